"""A public route (`CREV_PUBLIC=1`) from the real registry with token auth, behind a stand-in for
Vercel's edge cache that follows Vercel's documented rules: pulls with no login, no 401 and no
token request from any client; a second client's pull answered by the edge for everything
addressed by digest; private content refused and never cached; fewer upstream requests than
a direct pull.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import PushedImage, TestRegistry, ToolError
from rig.caching_edge import CachingEdge, run_caching_edge
from rig.crev_process import CrevProcess, crev_for, serving_acme
from rig.images import sha256_digest
from rig.vercel_runtime import run_vercel_app
from tests.support.containerd import Containerd
from tests.support.docker import Docker
from tests.support.layouts import check_dir_copy, copy_to_dir
from tests.support.podman import Podman


@pytest.fixture(scope="module")
def public_crev(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    with crev_for(registry, tmp_path_factory.mktemp("public"), public="1") as crev:
        yield crev


@pytest.fixture
def edge(public_crev: CrevProcess) -> Iterator[CachingEdge]:
    """A fresh (empty) edge cache in front of the module's crev."""
    with run_caching_edge(public_crev.url) as running:
        yield running


def assert_no_login_asked(edge: CachingEdge) -> None:
    assert [r.target for r in edge.requests if r.target.startswith("/api/token")] == []
    assert [r for r in edge.requests if r.status == 401] == []
    assert [r for r in edge.requests if r.authorized] == []


def test_skopeo_pulls_without_a_login_and_a_second_pull_is_served_by_the_edge(
    edge: CachingEdge, registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    tool = images["tool"]
    check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "first"), tool)
    assert_no_login_asked(edge)

    edge.clear_log()
    registry.clear_logs()
    check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "second"), tool)
    assert_no_login_asked(edge)
    # Only the tag moves: everything else came from the edge, and crev asked the registry for
    # the tag alone (its token for the scope is still good).
    assert [(r.method, r.target) for r in edge.misses()] == [("GET", "/v2/tool/manifests/1")]
    by_digest = [r for r in edge.requests if "sha256:" in r.target]
    assert by_digest and all(r.cached for r in by_digest)
    assert [(e.method, e.path) for e in registry.access_log()] == [
        ("GET", "/v2/acme/tool/manifests/1")
    ]
    assert registry.issuer.requests() == []


def test_a_private_image_on_a_public_route_is_refused_and_never_cached(
    edge: CachingEdge, registry: TestRegistry, tmp_path: Path
) -> None:
    for _ in range(2):
        with pytest.raises(ToolError) as failure:
            copy_to_dir(f"{edge.host}/private/secret:1", tmp_path / "private")
        assert "unauthorized" in str(failure.value).lower() or "denied" in str(failure.value)
    assert not [target for target in edge.cached_targets() if "private" in target]
    assert all(not r.cached for r in edge.requests if "private" in r.target)
    assert {r.status for r in edge.requests if "private" in r.target} == {401}


def test_fewer_upstream_requests_than_a_direct_pull(
    public_crev: CrevProcess, registry: TestRegistry, tmp_path: Path
) -> None:
    registry.clear_logs()
    copy_to_dir(f"{registry.host}/acme/tool:1", tmp_path / "direct")
    direct = len(registry.access_log()) + len(registry.issuer.requests())
    copy_to_dir(f"{public_crev.host}/tool:1", tmp_path / "warm")  # crev has its token from now on
    registry.clear_logs()
    copy_to_dir(f"{public_crev.host}/tool:1", tmp_path / "proxied")
    proxied = len(registry.access_log()) + len(registry.issuer.requests())
    # No ping of /v2/ and no token request per client: only content.
    assert proxied < direct
    assert registry.issuer.requests() == []
    assert ("GET", "/v2/") not in [(e.method, e.path) for e in registry.access_log()]


def test_podman_pulls_without_a_login(
    edge: CachingEdge, podman: Podman, images: dict[str, PushedImage]
) -> None:
    podman.pull(f"{edge.host}/tool:1")
    assert podman.inspect(f"{edge.host}/tool:1")["Digest"] == images["tool"].digest
    assert_no_login_asked(edge)


def test_ctr_pulls_without_a_login(
    edge: CachingEdge, containerd: Containerd, images: dict[str, PushedImage]
) -> None:
    tool = images["tool"]
    containerd.pull(f"{edge.host}/tool:1")
    assert containerd.images() == {f"{edge.host}/tool:1": tool.digest}
    assert containerd.content() == {tool.digest, *tool.blobs}
    assert_no_login_asked(edge)


def test_docker_pulls_without_a_login_and_a_second_pull_is_served_by_the_edge(
    edge: CachingEdge, docker: Docker, images: dict[str, PushedImage]
) -> None:
    tool = images["tool"]
    reference = f"{edge.host}/tool:1"
    docker.pull(reference)
    assert f"{edge.host}/tool@{tool.digest}" in docker.inspect(reference)["RepoDigests"]
    assert_no_login_asked(edge)
    docker.remove_images()
    edge.clear_log()
    docker.pull(reference)
    assert docker.inspect(reference)["Id"] == tool.blobs[0]
    assert_no_login_asked(edge)
    # docker resolves the tag (HEAD or GET, as it likes); everything by digest is the edge's.
    assert {r.target for r in edge.misses()} == {"/v2/tool/manifests/1"}


def test_oras_pulls_an_artifact_without_a_login(
    edge: CachingEdge, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    import oras.client

    artifact = images["artifact"]
    client = oras.client.OrasClient(hostname=edge.host, insecure=True)
    manifest = client.get_manifest(f"{edge.host}/artifact:1")
    assert json.dumps(manifest, sort_keys=True) == json.dumps(
        json.loads(artifact.manifest), sort_keys=True
    )
    for layer in manifest["layers"]:
        blob = client.get_blob(f"{edge.host}/artifact", layer["digest"])
        assert sha256_digest(blob.content) == layer["digest"]
    assert_no_login_asked(edge)


def test_the_same_through_vercels_runtime(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    with (
        run_vercel_app(
            tmp_path / "app",
            **serving_acme(registry.host, registry.scheme),
            public="1",
        ) as app,
        run_caching_edge(app.url) as edge,
    ):
        check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "first"), images["tool"])
        edge.clear_log()
        check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "second"), images["tool"])
        assert [(r.method, r.target) for r in edge.misses()] == [("GET", "/v2/tool/manifests/1")]
        assert_no_login_asked(edge)
