"""The `oras` Python SDK (PyPI `oras`) through `python -m crev` from a real registry.

oras-py keeps one bearer token per client and re-sends it to every repository, so each test uses
a client of its own for one repository (the same happens against the registry directly).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import oras.client
import pytest

from rig import PushedImage, TestRegistry
from rig.crev_process import CrevProcess
from rig.images import OCI_MANIFEST
from tests.support.upstream_requests import assert_only_pulled


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oras_client(crev: CrevProcess) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=crev.host, insecure=True)


def test_artifact_manifest_and_blobs(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    artifact = images["artifact"]
    client = oras_client(crev_process)
    registry.clear_logs()
    manifest = client.get_manifest(f"{crev_process.host}/artifact:1")
    assert manifest == json.loads(artifact.manifest)
    assert manifest["artifactType"] == artifact.artifact_type
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])] == (
        list(artifact.blobs)
    )
    # The same manifest fetched raw, by digest, with the client's token: byte-identical.
    raw = client.do_request(
        f"http://{crev_process.host}/v2/artifact/manifests/{artifact.digest}",
        headers={"Accept": OCI_MANIFEST},
    )
    assert raw.status_code == 200
    assert raw.content == artifact.manifest
    assert raw.headers["Docker-Content-Digest"] == artifact.digest
    assert raw.headers["Content-Type"] == OCI_MANIFEST
    for digest in artifact.blobs:
        blob = client.get_blob(f"{crev_process.host}/artifact:1", digest)
        assert blob.status_code == 200
        assert sha256(blob.content) == digest
        assert len(blob.content) == artifact.blob_sizes[digest]
    # The issuer asked for the mapped scope, or (after an earlier anonymous pull of the
    # session's crev) nothing: crev answered with the token the issuer gave for it.
    assert_only_pulled(registry, "acme/artifact", crev_process)


def test_pull_writes_the_artifact_payload(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    artifact = images["artifact"]
    payload_digest = artifact.blobs[1]
    files = oras_client(crev_process).pull(
        target=f"{crev_process.host}/artifact:1", outdir=str(tmp_path)
    )
    # The payload has no title annotation, so oras names the file after its digest.
    assert [Path(file).name for file in files] == [payload_digest]
    assert sha256(Path(files[0]).read_bytes()) == payload_digest


def test_tag_list(crev_process: CrevProcess, images: dict[str, PushedImage]) -> None:
    many = images["many"]
    tags = oras_client(crev_process).get_tags(f"{crev_process.host}/many")
    assert len(many.tags) > 100
    assert sorted(tags) == sorted(many.tags)
    assert oras_client(crev_process).get_tags(f"{crev_process.host}/tool") == ["1"]


def test_private_manifest_needs_credentials(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    private = images["private"]
    target = f"{crev_process.host}/private/secret:1"
    with pytest.raises(ValueError, match="Unauthorized"):
        oras_client(crev_process).get_manifest(target)
    client = oras_client(crev_process)
    client.auth.set_basic_auth(registry.username, registry.password)
    manifest = client.get_manifest(target)
    assert manifest == json.loads(private.manifest)
    config = client.get_blob(target, manifest["config"]["digest"])
    assert sha256(config.content) == private.blobs[0]
    assert registry.password not in crev_process.log()
