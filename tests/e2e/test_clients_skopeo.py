"""More of the client matrix through `python -m crev`: skopeo on a Docker schema2 image and an
OCI artifact, and a plain HTTP client doing HEAD-then-GET by digest as pulling clients do.

(skopeo copy, inspect, list-tags, platform selection, the private image and the request count
are in test_pull_skopeo.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, repository_names, skopeo
from rig.crev_process import CrevProcess
from rig.images import (
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    sha256_digest,
)
from tests.support.layouts import check_dir_copy, copy_to_dir

INSECURE = "--tls-verify=false"


def test_docker_schema2_manifest(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    docker = images["docker"]
    assert docker.media_type == DOCKER_MANIFEST
    raw = skopeo("inspect", "--raw", INSECURE, f"docker://{crev_process.host}/docker:1")
    assert raw.stdout.encode() == docker.manifest
    inspected = json.loads(
        skopeo("inspect", INSECURE, f"docker://{crev_process.host}/docker:1").stdout
    )
    assert inspected["Digest"] == docker.digest
    assert inspected["Layers"] == list(docker.blobs[1:])
    registry.clear_logs()
    check_dir_copy(copy_to_dir(f"{crev_process.host}/docker:1", tmp_path / "docker"), docker)
    assert repository_names(registry.access_log()) == {"acme/docker"}


def test_artifact_fetch(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    artifact = images["artifact"]
    raw = skopeo("inspect", "--raw", INSECURE, f"docker://{crev_process.host}/artifact:1")
    assert raw.stdout.encode() == artifact.manifest
    assert json.loads(raw.stdout)["artifactType"] == artifact.artifact_type
    by_digest = skopeo(
        "inspect", "--raw", INSECURE, f"docker://{crev_process.host}/artifact@{artifact.digest}"
    )
    assert by_digest.stdout.encode() == artifact.manifest
    check_dir_copy(copy_to_dir(f"{crev_process.host}/artifact:1", tmp_path / "artifact"), artifact)


# ----------------------------------------------------------------- HEAD then GET


def _challenge_params(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    assert scheme.lower() == "bearer", header
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def pull_token(client: httpx.Client, crev: CrevProcess, name: str) -> str:
    """Anonymous token the way clients get one: from the 401's challenge, at its realm."""
    challenged = client.head(f"/v2/{name}/manifests/1", headers={"Accept": MANIFEST_ACCEPT})
    assert challenged.status_code == 401
    params = _challenge_params(challenged.headers["WWW-Authenticate"])
    assert params["realm"] == f"{crev.url}/api/token"
    assert params["scope"] == f"repository:{name}:pull"
    query = {"service": params["service"], "scope": params["scope"]}
    answer = client.get(params["realm"], params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body.get("token") or body["access_token"]


ACCEPT = ", ".join([MANIFEST_ACCEPT, OCI_MANIFEST, OCI_INDEX])


@pytest.mark.parametrize("key", ["tool", "multi", "docker", "artifact"])
def test_head_then_get_by_digest(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage], key: str
) -> None:
    image = images[key]
    name = image.name.removeprefix("acme/")
    with httpx.Client(base_url=crev_process.url) as client:
        token = pull_token(client, crev_process, name)
        auth = {"Authorization": f"Bearer {token}", "Accept": ACCEPT}
        registry.clear_logs()
        head = client.head(f"/v2/{name}/manifests/{image.tag}", headers=auth)
        assert head.status_code == 200
        assert head.content == b""
        digest = head.headers["Docker-Content-Digest"]
        assert digest == image.digest
        assert int(head.headers["Content-Length"]) == len(image.manifest)
        assert head.headers["Content-Type"] == image.media_type

        got = client.get(f"/v2/{name}/manifests/{digest}", headers=auth)
        assert got.status_code == 200
        assert sha256_digest(got.content) == digest
        assert got.content == image.manifest
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.headers["Content-Type"] == image.media_type

        # The index's children and every blob, by digest, the same way.
        for child in image.children:
            child_head = client.head(f"/v2/{name}/manifests/{child}", headers=auth)
            assert child_head.headers["Docker-Content-Digest"] == child
            assert sha256_digest(
                client.get(f"/v2/{name}/manifests/{child}", headers=auth).content
            ) == (child)
        for blob in image.blobs:
            blob_head = client.head(f"/v2/{name}/blobs/{blob}", headers=auth)
            assert blob_head.status_code == 200
            assert int(blob_head.headers["Content-Length"]) == image.blob_sizes[blob]
            assert (
                sha256_digest(client.get(f"/v2/{name}/blobs/{blob}", headers=auth).content) == blob
            )
    # Each request reached the registry exactly once, under the prefix, as asked.
    log = registry.access_log()
    assert [entry.method for entry in log[:2]] == ["HEAD", "GET"]
    assert log[0].path == f"/v2/{image.name}/manifests/{image.tag}"
    assert log[1].path == f"/v2/{image.name}/manifests/{image.digest}"
    assert len(log) == 2 + 2 * len(image.children) + 2 * len(image.blobs)
    assert repository_names(log) == {image.name}
