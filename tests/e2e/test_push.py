"""Push through crev (opt-in with CREV_ALLOW_PUSH=1) into the real registry, and back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, ToolError, repository_names, skopeo
from rig.crev_process import CrevProcess, crev_for
from rig.images import build_large_image, build_small_image, write_oci_layout
from rig.tools import require_binaries
from tests.support.podman import fresh_podman


@pytest.fixture(scope="module")
def limited_crev(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    """crev with a 1 MiB request body limit, as Vercel imposes 4.5 MB."""
    workdir = tmp_path_factory.mktemp("limited")
    with crev_for(registry, workdir, allow_push="1", max_body_bytes=str(1024 * 1024)) as crev:
        yield crev


def creds(registry: TestRegistry) -> str:
    return f"{registry.username}:{registry.password}"


def layout(tmp_path: Path, label: str, layers: int = 3) -> tuple[Path, str]:
    built = build_small_image(label, layers=layers)
    directory = write_oci_layout(tmp_path / label, "v", built.manifest, built.blobs)
    return directory, built.manifest.digest


def test_skopeo_push_lands_under_the_prefix_and_pulls_back(
    push_crev: CrevProcess, registry: TestRegistry, tmp_path: Path
) -> None:
    directory, digest = layout(tmp_path, "pushed-by-skopeo")
    registry.clear_logs()
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(registry),
        "--preserve-digests",
        f"oci:{directory}:v",
        f"docker://{push_crev.host}/pushed/skopeo:1",
    )
    assert repository_names(registry.access_log()) == {"acme/pushed/skopeo"}
    direct = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/acme/pushed/skopeo:1"
    )
    assert "sha256:" + hashlib.sha256(direct.stdout.encode()).hexdigest() == digest
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{push_crev.host}/pushed/skopeo:1",
        f"oci:{tmp_path / 'back'}:x",
    )
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert registry.password not in push_crev.log()


def test_push_needs_credentials(push_crev: CrevProcess, tmp_path: Path) -> None:
    directory, _ = layout(tmp_path, "anonymous-push")
    with pytest.raises(Exception, match=r"(?i)unauthorized|denied|401"):
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{directory}:v",
            f"docker://{push_crev.host}/pushed/anon:1",
        )


def test_read_only_default_refuses_writes(crev_process: CrevProcess, tmp_path: Path) -> None:
    response = httpx.post(f"{crev_process.url}/v2/pushed/x/blobs/uploads/")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert response.headers["allow"] == ""
    response = httpx.put(f"{crev_process.url}/v2/pushed/x/manifests/1", content=b"{}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_podman_push_and_pull_back(
    push_crev: CrevProcess, registry: TestRegistry, tmp_path: Path
) -> None:
    require_binaries("podman")
    directory, _ = layout(tmp_path, "pushed-by-podman", layers=4)
    reference = f"{push_crev.host}/pushed/podman:1"
    with fresh_podman(tmp_path / "podman") as podman:
        image_id = podman.run("pull", "-q", f"oci:{directory}:v").stdout.strip()
        podman.run("tag", image_id, reference)
        podman.run("push", "--tls-verify=false", "--creds", creds(registry), reference)
        pushed = json.loads(
            skopeo(
                "inspect", "--tls-verify=false", f"docker://{registry.host}/acme/pushed/podman:1"
            ).stdout
        )
        assert len(pushed["Layers"]) == 4
        podman.run("rmi", "-a", "-f")
        podman.pull(reference)
        pulled = podman.inspect(reference)
    assert f"{push_crev.host}/pushed/podman@{pushed['Digest']}" in pulled["RepoDigests"]


class Api:
    """Raw registry API calls through crev with a push token from crev's token endpoint."""

    def __init__(self, crev: CrevProcess, registry: TestRegistry, *scopes: str) -> None:
        token = httpx.get(
            f"{crev.url}/api/token",
            params=[("service", registry.service), *[("scope", scope) for scope in scopes]],
            auth=(registry.username, registry.password),
        ).json()["token"]
        self.client = httpx.Client(base_url=crev.url, headers={"Authorization": f"Bearer {token}"})


def test_cross_repository_mount(
    push_crev: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    layer = images["tool"].blobs[-1]
    api = Api(push_crev, registry, "repository:mounted:pull,push", "repository:tool:pull")
    response = api.client.post(
        "/v2/mounted/blobs/uploads/", params={"mount": layer, "from": "tool"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v2/mounted/blobs/{layer}"
    assert api.client.head(f"/v2/mounted/blobs/{layer}").status_code == 200
    upstream = registry.client().head(
        f"/v2/acme/mounted/blobs/{layer}",
        headers={"Authorization": f"Bearer {registry.token('repository:acme/mounted:pull')}"},
    )
    assert upstream.status_code == 200


def test_chunked_upload_under_the_body_limit_with_exact_state(
    limited_crev: CrevProcess, registry: TestRegistry
) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB: over this crev's 1 MiB body limit in one request
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    api = Api(limited_crev, registry, "repository:chunked:pull,push")
    start = api.client.post("/v2/chunked/blobs/uploads/")
    assert start.status_code == 202
    location = start.headers["location"]
    assert location.startswith("/v2/chunked/blobs/uploads/") and "_state=" in location
    too_big = api.client.patch(
        location, content=blob, headers={"Content-Type": "application/octet-stream"}
    )
    assert too_big.status_code == 413
    # The refused body was not read: the connection cannot carry another request.
    assert too_big.headers["connection"] == "close"
    assert "in chunks" in too_big.json()["errors"][0]["message"]
    start = api.client.post("/v2/chunked/blobs/uploads/")
    location = start.headers["location"]
    chunk = 512 * 1024
    for offset in range(0, len(blob), chunk):
        part = blob[offset : offset + chunk]
        response = api.client.patch(
            location,
            content=part,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(part) - 1}",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["range"] == f"0-{offset + len(part) - 1}"
        location = response.headers["location"]
        assert location.startswith("/v2/chunked/blobs/uploads/")
    status = api.client.get(location)
    assert status.status_code == 204
    done = api.client.put(location + f"&digest={digest}")
    assert done.status_code == 201, done.text
    assert done.headers["location"] == f"/v2/chunked/blobs/{digest}"
    assert api.client.get(f"/v2/chunked/blobs/{digest}").content == blob


def test_transfer_encoding_chunked_body_is_dechunked(
    push_crev: CrevProcess, registry: TestRegistry
) -> None:
    blob = b"streamed " * 10_000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    api = Api(push_crev, registry, "repository:streamed:pull,push")
    location = api.client.post("/v2/streamed/blobs/uploads/").headers["location"]

    def pieces() -> Iterator[bytes]:
        for offset in range(0, len(blob), 7_000):
            yield blob[offset : offset + 7_000]

    done = api.client.put(location + f"&digest={digest}", content=pieces())
    assert done.status_code == 201, done.text
    assert api.client.get(f"/v2/streamed/blobs/{digest}").content == blob


def test_manifest_put_and_delete(
    push_crev: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    tool = images["tool"]
    api = Api(push_crev, registry, "repository:deletable:pull,push,delete", "repository:tool:pull")
    for blob in tool.blobs:
        mounted = api.client.post(
            "/v2/deletable/blobs/uploads/", params={"mount": blob, "from": "tool"}
        )
        assert mounted.status_code == 201
    put = api.client.put(
        "/v2/deletable/manifests/1",
        content=tool.manifest,
        headers={"Content-Type": tool.media_type},
    )
    assert put.status_code == 201, put.text
    assert put.headers["docker-content-digest"] == tool.digest
    assert put.headers["location"] == f"/v2/deletable/manifests/{tool.digest}"
    deleted = api.client.delete(f"/v2/deletable/manifests/{tool.digest}")
    assert deleted.status_code == 202, deleted.text
    assert api.client.get(f"/v2/deletable/manifests/{tool.digest}").status_code == 404


def test_large_layer_push_streams_and_a_body_limit_refuses_it_clearly(
    push_crev: CrevProcess, limited_crev: CrevProcess, registry: TestRegistry, tmp_path: Path
) -> None:
    built = build_large_image("pushed-big", 24 * 1024 * 1024, seed=7)
    directory = write_oci_layout(tmp_path / "big", "v", built.manifest, built.blobs)
    push = [
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds(registry),
        "--preserve-digests",
    ]
    skopeo(*push, f"oci:{directory}:v", f"docker://{push_crev.host}/pushed/big:1")
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/acme/pushed/big:1"
    )
    assert "sha256:" + hashlib.sha256(raw.stdout.encode()).hexdigest() == built.manifest.digest
    # skopeo sends a layer in one request: past the body limit that is refused, with a reason.
    with pytest.raises(ToolError) as refused:
        skopeo(*push, f"oci:{directory}:v", f"docker://{limited_crev.host}/pushed/big-limited:1")
    assert "upload blobs in chunks" in refused.value.stderr or "413" in refused.value.stderr
