"""Moving registries: a public route whose upstream is the session's registry (the new home,
`acme/`) with a second real registry as its fallback (the old one, `old/`). skopeo and docker pull
a name only the fallback has, a tag only the fallback has, and a name both have (the primary's
wins); the fallback is asked only after the primary's 404; a primary's 401 or 500 reaches the
client and the fallback is never asked; a name the fallback keeps private is refused cleanly, as
is a fallback on a route where clients log in; and with a tag TTL a repeat pull through the
caching edge reaches crev zero times.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from rig import AccessPolicy, PushedImage, TestRegistry, ToolError, default_is_private
from rig.caching_edge import CachingEdge, run_caching_edge
from rig.crev_process import (
    PROJECT_ROOT,
    CrevProcess,
    crev_environment,
    crev_for,
    run_crev,
    serving_acme,
)
from rig.images import push_small_image
from rig.registry import start_test_registry
from rig.tools import require_binaries
from rig.vercel_runtime import run_vercel_app
from tests.support.docker import Docker
from tests.support.layouts import check_dir_copy, copy_to_dir
from tests.support.upstream_requests import names_a_proxy_error

TAG_SECONDS = "300"


def stash_is_private(repository: str) -> bool:
    """The old registry keeps `old/stash` private; the new one has no such name."""
    return default_is_private(repository) or repository.startswith("old/stash")


@pytest.fixture(scope="module")
def old_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    require_binaries("docker-registry", "skopeo")
    workdir = tmp_path_factory.mktemp("old-registry")
    with start_test_registry(workdir, policy=AccessPolicy(is_private=stash_is_private)) as old:
        yield old


@pytest.fixture(scope="module")
def old_images(old_registry: TestRegistry) -> dict[str, PushedImage]:
    images = {
        # Not copied to the new registry yet.
        "legacy": push_small_image(old_registry, "old/legacy", "1"),
        # A tag of a name both have, left on the old registry only.
        "tool-0.9": push_small_image(old_registry, "old/tool", "0.9", label="old tool 0.9"),
        # The same tag on both, with other content: the new registry's must win.
        "tool-1": push_small_image(old_registry, "old/tool", "1", label="old tool 1"),
        "stash": push_small_image(old_registry, "old/stash", "1"),
    }
    old_registry.clear_logs()
    return images


def fallback_settings(old: TestRegistry) -> dict[str, str]:
    return {
        "fallback_registry_host": old.host,
        "fallback_registry_scheme": old.scheme,
        "fallback_repo_prefix": "old",
    }


@pytest.fixture(scope="module")
def moving_crev(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    old_registry: TestRegistry,
    old_images: dict[str, PushedImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CrevProcess]:
    with crev_for(
        registry,
        tmp_path_factory.mktemp("moving"),
        public="1",
        tag_cache_seconds=TAG_SECONDS,
        **fallback_settings(old_registry),
    ) as crev:
        yield crev


@pytest.fixture
def edge(moving_crev: CrevProcess) -> Iterator[CachingEdge]:
    with run_caching_edge(moving_crev.url) as running:
        yield running


def clear(*registries: TestRegistry) -> None:
    for each in registries:
        each.clear_logs()


def content_requests(registry: TestRegistry, name: str) -> list[tuple[str, str, int]]:
    return [
        (record.method, record.path, record.status)
        for record in registry.access_log_records()
        if record.path.startswith(f"/v2/{name}/")
    ]


def test_skopeo_pulls_a_name_only_the_old_registry_has(
    moving_crev: CrevProcess,
    registry: TestRegistry,
    old_registry: TestRegistry,
    old_images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    clear(registry, old_registry)
    check_dir_copy(
        copy_to_dir(f"{moving_crev.host}/legacy:1", tmp_path / "legacy"), old_images["legacy"]
    )
    asked_new = content_requests(registry, "acme/legacy")
    asked_old = content_requests(old_registry, "old/legacy")
    # Each request reached the old registry only after the new one had answered it 404, and
    # only as many as a direct pull makes.
    assert asked_new and {status for _, _, status in asked_new} == {404}
    assert sorted((m, p.replace("/old/", "/acme/", 1)) for m, p, _ in asked_old) == sorted(
        (m, p) for m, p, _ in asked_new
    )
    assert {status for _, _, status in asked_old} == {200}
    assert f"upstream=404 fallback=200@{old_registry.host}" in moving_crev.log()


def test_skopeo_pulls_a_tag_only_the_old_registry_has(
    moving_crev: CrevProcess, old_images: dict[str, PushedImage], tmp_path: Path
) -> None:
    check_dir_copy(
        copy_to_dir(f"{moving_crev.host}/tool:0.9", tmp_path / "old-tag"), old_images["tool-0.9"]
    )


def test_where_both_have_it_the_new_registry_wins_and_the_old_one_is_never_asked(
    moving_crev: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    old_registry: TestRegistry,
    old_images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    clear(registry, old_registry)
    check_dir_copy(copy_to_dir(f"{moving_crev.host}/tool:1", tmp_path / "both"), images["tool"])
    assert images["tool"].digest != old_images["tool-1"].digest
    assert old_registry.access_log() == []
    assert old_registry.issuer.requests() == []


def test_the_tag_list_is_the_union_of_both(
    moving_crev: CrevProcess, images: dict[str, PushedImage]
) -> None:
    listed = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", f"docker://{moving_crev.host}/tool"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(listed.stdout)["Tags"] == ["0.9", "1"]


def test_a_primary_401_is_passed_on_and_the_old_registry_is_never_asked(
    moving_crev: CrevProcess, registry: TestRegistry, old_registry: TestRegistry, tmp_path: Path
) -> None:
    clear(registry, old_registry)
    with pytest.raises(ToolError) as refused:
        copy_to_dir(f"{moving_crev.host}/private/secret:1", tmp_path / "private")
    message = refused.value.stderr.lower()
    assert "unauthorized" in message or "denied" in message, message
    assert not names_a_proxy_error(message), message
    assert {s for _, _, s in content_requests(registry, "acme/private/secret")} == {401}
    assert old_registry.access_log() == []


def test_a_primary_500_is_passed_on_and_the_old_registry_is_never_asked(
    httpserver: HTTPServer,
    old_registry: TestRegistry,
    old_images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    # A stand-in for a new registry having an outage; the old one has the image.
    httpserver.expect_request("/v2/").respond_with_data("{}")
    httpserver.expect_request("/v2/old-stand-in/legacy/manifests/1").respond_with_data(
        "down", status=500
    )
    with run_crev(
        tmp_path / "crev",
        registry_host=f"{httpserver.host}:{httpserver.port}",
        registry_scheme="http",
        repo_prefix="old-stand-in",
        public="1",
        **fallback_settings(old_registry),
    ) as crev:
        old_registry.clear_logs()
        with pytest.raises(ToolError) as failed:
            copy_to_dir(f"{crev.host}/legacy:1", tmp_path / "legacy")
    # The stand-in's 500 as skopeo reports it, not a 5xx of crev's own or a port that holds 500.
    stderr = failed.value.stderr.lower()
    assert re.search(r"(?<![\d.:])500(?!\d)", stderr) or "internal server error" in stderr, stderr
    assert not re.search(r"(?<![\d.:])50[24](?!\d)", stderr), stderr
    assert [request.path for request, _ in httpserver.log if "manifests" in request.path]
    assert old_registry.access_log() == []


def test_a_name_the_old_registry_keeps_private_is_refused_cleanly_and_never_cached(
    edge: CachingEdge, registry: TestRegistry, old_registry: TestRegistry, tmp_path: Path
) -> None:
    clear(registry, old_registry)
    for attempt in range(2):
        with pytest.raises(ToolError) as refused:
            copy_to_dir(f"{edge.host}/stash:1", tmp_path / f"stash-{attempt}")
        message = refused.value.stderr.lower()
        assert "unauthorized" in message or "denied" in message, message
        assert not names_a_proxy_error(message), message
    assert {s for _, _, s in content_requests(old_registry, "old/stash")} == {401}
    assert not [target for target in edge.cached_targets() if "stash" in target]


def test_a_fallback_on_a_route_where_clients_log_in_is_refused_at_start(
    registry: TestRegistry, old_registry: TestRegistry
) -> None:
    env = crev_environment(
        registry_host=registry.host,
        registry_scheme=registry.scheme,
        repo_prefix="acme",
        **fallback_settings(old_registry),
    )
    started = subprocess.run(
        [sys.executable, "-m", "crev", "--port", "0"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode == 2
    assert started.stderr.strip().splitlines() == [
        "crev: configuration error: CREV_FALLBACK_REGISTRY_HOST: a fallback needs a public route "
        "or server-side credentials (a client's token is for the primary's realm, so crev could "
        "not ask the fallback)"
    ]


def test_with_the_tag_ttl_a_repeat_pull_through_the_edge_reaches_crev_zero_times(
    edge: CachingEdge,
    registry: TestRegistry,
    old_registry: TestRegistry,
    images: dict[str, PushedImage],
    old_images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    for reference, image in (("tool:1", images["tool"]), ("legacy:1", old_images["legacy"])):
        check_dir_copy(copy_to_dir(f"{edge.host}/{reference}", tmp_path / "first"), image)
        edge.clear_log()
        clear(registry, old_registry)
        check_dir_copy(copy_to_dir(f"{edge.host}/{reference}", tmp_path / "again"), image)
        assert edge.requests and edge.misses() == []
        assert (registry.access_log(), old_registry.access_log()) == ([], [])
        for directory in ("first", "again"):
            subprocess.run(["rm", "-rf", str(tmp_path / directory)], check=True)


def test_docker_pulls_from_either_registry_and_the_new_one_wins(
    moving_crev: CrevProcess,
    docker: Docker,
    images: dict[str, PushedImage],
    old_images: dict[str, PushedImage],
) -> None:
    for reference, image in (
        ("legacy:1", old_images["legacy"]),
        ("tool:0.9", old_images["tool-0.9"]),
        ("tool:1", images["tool"]),
    ):
        pulled = f"{moving_crev.host}/{reference}"
        docker.pull(pulled)
        name = pulled.rsplit(":", 1)[0]
        assert f"{name}@{image.digest}" in docker.inspect(pulled)["RepoDigests"]


def test_the_same_through_vercels_runtime(
    registry: TestRegistry,
    old_registry: TestRegistry,
    old_images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    with (
        run_vercel_app(
            tmp_path / "app",
            **serving_acme(registry.host, registry.scheme),
            public="1",
            tag_cache_seconds=TAG_SECONDS,
            **fallback_settings(old_registry),
        ) as app,
        run_caching_edge(app.url) as edge,
    ):
        legacy = old_images["legacy"]
        check_dir_copy(copy_to_dir(f"{edge.host}/legacy:1", tmp_path / "first"), legacy)
        edge.clear_log()
        clear(registry, old_registry)
        check_dir_copy(copy_to_dir(f"{edge.host}/legacy:1", tmp_path / "second"), legacy)
        assert edge.requests and edge.misses() == []
        assert (registry.access_log(), old_registry.access_log()) == ([], [])
