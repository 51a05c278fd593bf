"""The redirecting test registry on its own: distribution on its `s3` driver, with `moto_server`
over TLS as the storage, answers blob reads with a 307 to a presigned URL there, as ghcr.io and
Docker Hub answer with one to their storage; the storage serves the bytes, ranges included."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from rig import PushedImage, TestRegistry, push_small_image
from rig.registry import client_verify
from tests.support.registry_fixtures import run_test_registry


@pytest.fixture(scope="module", params=["plain", "tls"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestRegistry]:
    with pytest.MonkeyPatch.context() as environment:
        # distribution's s3 driver panics at start with AWS_CA_BUNDLE set: the rig unsets it.
        environment.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
        workdir = tmp_path_factory.mktemp(f"redirecting-{request.param}")
        with run_test_registry(workdir, tls=request.param == "tls", redirecting=True) as running:
            yield running


@pytest.fixture(scope="module")
def image(registry: TestRegistry) -> PushedImage:
    return push_small_image(registry, "acme/tool", "1")


def storage_client(registry: TestRegistry) -> httpx.Client:
    assert registry.storage is not None
    return httpx.Client(verify=client_verify(registry.storage.ca_file), timeout=30)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_blob_read_is_a_307_to_a_presigned_url_on_the_storage(
    registry: TestRegistry, image: PushedImage, method: str
) -> None:
    assert registry.storage is not None
    token = registry.token("repository:acme/tool:pull")
    layer = image.blobs[1]
    with registry.client() as client:
        answer = client.request(
            method, f"/v2/acme/tool/blobs/{layer}", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 307
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == registry.storage.url
    assert location.path.endswith(f"/{layer.removeprefix('sha256:')}/data")
    signed = parse_qs(location.query)
    # SigV4, valid for 20 minutes (distribution's default).
    assert signed["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert signed["X-Amz-Expires"] == ["1200"]
    assert set(signed) >= {"X-Amz-Date", "X-Amz-Signature", "X-Amz-Credential"}
    with storage_client(registry) as storage:
        fetched = storage.request(method, answer.headers["location"])
    assert fetched.status_code == 200
    assert fetched.headers["content-length"] == str(image.blob_sizes[layer])


def test_the_storage_serves_the_bytes_and_ranges_and_logs_the_signed_reads(
    registry: TestRegistry, image: PushedImage
) -> None:
    assert registry.storage is not None
    token = registry.token("repository:acme/tool:pull")
    layer = image.blobs[1]
    with registry.client() as client:
        location = client.get(
            f"/v2/acme/tool/blobs/{layer}", headers={"Authorization": f"Bearer {token}"}
        ).headers["location"]
    registry.clear_logs()
    with storage_client(registry) as storage:
        whole = storage.get(location)
        part = storage.get(location, headers={"Range": "bytes=10-99"})
    assert whole.status_code == 200
    assert part.status_code == 206
    assert part.content == whole.content[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(whole.content)}"
    assert [read.status for read in registry.storage.signed_reads()[layer]] == [200, 206]


def test_manifests_are_served_by_the_registry_itself(
    registry: TestRegistry, image: PushedImage
) -> None:
    token = registry.token("repository:acme/tool:pull")
    with registry.client() as client:
        answer = client.get(
            "/v2/acme/tool/manifests/1",
            headers={"Authorization": f"Bearer {token}", "Accept": image.media_type},
        )
    assert answer.status_code == 200
    assert answer.content == image.manifest
