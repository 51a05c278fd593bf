"""`python-dxf` (PyPI) through `python -m crev` from a real registry with token auth.

python-dxf refuses token auth over plain http and always asks the token realm over https, so
crev is reached through a TLS terminator (``rig.tls_front``) that pipes bytes to it
unchanged: crev sees the front's address as ``Host`` and builds its realm from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import pytest
import requests
from dxf import DXF, DXFBase
from dxf.exceptions import DXFUnauthorizedError

from rig import PushedImage, TestRegistry
from rig.crev_process import CrevProcess
from rig.tls_front import TlsFront, tls_front
from tests.support.upstream_requests import assert_only_pulled

Auth = Callable[[DXFBase, requests.Response], None]


@pytest.fixture(scope="module")
def front(
    crev_process: CrevProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsFront]:
    with tls_front(crev_process.host, tmp_path_factory.mktemp("dxf-front")) as running:
        yield running


def anonymous() -> Auth:
    def auth(dxf: DXFBase, response: requests.Response) -> None:
        dxf.authenticate(response=response)

    return auth


def with_credentials(username: str, password: str) -> Auth:
    def auth(dxf: DXFBase, response: requests.Response) -> None:
        dxf.authenticate(username, password, response=response)

    return auth


def dxf_for(front: TlsFront, name: str, auth: Auth | None = None) -> DXF:
    return DXF(front.host, name, auth=auth or anonymous(), tlsverify=str(front.ca_file))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pull_blob(dxf: DXF, digest: str) -> bytes:
    # pull_blob's iterator raises DXFDigestMismatchError itself if the bytes don't match.
    return b"".join(dxf.pull_blob(digest))


def test_pull_manifest_and_blobs(
    front: TlsFront,
    registry: TestRegistry,
    crev_process: CrevProcess,
    images: dict[str, PushedImage],
) -> None:
    tool = images["tool"]
    registry.clear_logs()
    dxf = dxf_for(front, "tool")
    _, response = dxf.get_manifest_and_response("1")
    assert response.content == tool.manifest
    assert sha256(response.content) == tool.digest
    assert response.headers["Docker-Content-Digest"] == tool.digest
    config, *layers = tool.blobs
    assert dxf.get_digest("1") == config
    assert dxf.get_alias("1") == layers
    for digest in tool.blobs:
        data = pull_blob(dxf, digest)
        assert sha256(data) == digest
        assert dxf.blob_size(digest) == len(data) == tool.blob_sizes[digest]
    # The issuer asked for the mapped scope, or (after an earlier anonymous pull of the
    # session's crev) nothing: crev answered with the token the issuer gave for it.
    assert_only_pulled(registry, "acme/tool", crev_process)


def test_head_then_get_by_digest(front: TlsFront, images: dict[str, PushedImage]) -> None:
    multi = images["multi"]
    dxf = dxf_for(front, "multi")
    digest, head = dxf.head_manifest_and_response("1")
    assert digest == multi.digest
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(multi.manifest)
    _, response = dxf.get_manifest_and_response(digest)
    assert response.content == multi.manifest
    assert sha256(response.content) == digest


def test_platform_from_the_index(
    front: TlsFront, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    multi = images["multi"]
    dxf = dxf_for(front, "multi")
    assert dxf.get_alias("1", platform="linux/arm64") == [
        layer["digest"] for layer in child_manifest(dxf, multi.children[1])["layers"]
    ]
    arm64_config = dxf.get_digest("1", platform="linux/arm64")
    assert arm64_config == child_manifest(dxf, multi.children[1])["config"]["digest"]
    assert json.loads(pull_blob(dxf, arm64_config))["architecture"] == "arm64"
    per_platform = dxf.get_digest("1")
    assert set(per_platform) == {"linux/amd64", "linux/arm64"}
    assert per_platform["linux/amd64"] != arm64_config


def child_manifest(dxf: DXF, digest: str) -> dict:
    _, response = dxf.get_manifest_and_response(digest)
    assert sha256(response.content) == digest
    return json.loads(response.content)


def test_docker_format_manifest(front: TlsFront, images: dict[str, PushedImage]) -> None:
    docker = images["docker"]
    dxf = dxf_for(front, "docker")
    _, response = dxf.get_manifest_and_response("1")
    assert response.content == docker.manifest
    assert response.headers["Content-Type"] == docker.media_type
    assert docker.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert dxf.get_digest("1") == docker.blobs[0]


def test_private_needs_credentials(
    front: TlsFront,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    private = images["private"]
    with pytest.raises(DXFUnauthorizedError):
        dxf_for(front, "private/secret").get_manifest_and_response("1")
    dxf = dxf_for(front, "private/secret", with_credentials(registry.username, registry.password))
    _, response = dxf.get_manifest_and_response("1")
    assert response.content == private.manifest
    for digest in private.blobs:
        assert sha256(pull_blob(dxf, digest)) == digest
    assert registry.password not in crev_process.log()


def test_list_aliases(front: TlsFront, images: dict[str, PushedImage]) -> None:
    many = images["many"]
    dxf = dxf_for(front, "many")
    assert sorted(dxf.list_aliases()) == sorted(many.tags)
    # Debian's registry ignores n= (see test_clients_pagination for real pages).
    assert sorted(dxf.list_aliases(batch_size=50)) == sorted(many.tags)
    assert dxf_for(front, "tool").list_aliases() == ["1"]
