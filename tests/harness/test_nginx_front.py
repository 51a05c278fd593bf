"""The bench's TLS upstream on its own: nginx terminating TLS in front of the real registry."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, push_large_image
from rig.nginx_front import NginxFront, find_nginx, nginx_front
from rig.tools import skip_or_fail_under_ci
from tests.support.registry_fixtures import running_registry

registry = pytest.fixture(scope="module", name="registry")(running_registry)


@pytest.fixture(scope="module")
def large(registry: TestRegistry) -> PushedImage:
    return push_large_image(registry, "acme/large", "1", 8 * 1024 * 1024)


@pytest.fixture(scope="module")
def front(registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxFront]:
    if find_nginx() is None:
        skip_or_fail_under_ci("nginx not installed: apt-get install nginx (CI installs it)")
    with nginx_front(registry.host, tmp_path_factory.mktemp("nginx")) as running:
        yield running


def client(front: NginxFront) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=front.ca_file), timeout=30)


def test_the_registry_answers_over_tls_through_the_front(
    front: NginxFront, registry: TestRegistry
) -> None:
    with client(front) as http:
        response = http.get(f"{front.url}/v2/")
    assert response.status_code == 401
    assert response.headers["server"].startswith("nginx/")
    # The registry's own challenge, naming its realm, came through unchanged.
    assert response.headers["www-authenticate"].startswith(f'Bearer realm="{registry.realm}"')
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


def test_an_untrusted_client_is_refused_by_the_front(front: NginxFront) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{front.url}/v2/", verify=ssl.create_default_context())


def test_a_blob_streams_through_the_front_byte_for_byte(
    front: NginxFront, registry: TestRegistry, large: PushedImage
) -> None:
    digest = large.blobs[-1]
    token = registry.token("repository:acme/large:pull")
    hasher = hashlib.sha256()
    with (
        client(front) as http,
        http.stream(
            "GET",
            f"{front.url}/v2/acme/large/blobs/{digest}",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            hasher.update(chunk)
    assert f"sha256:{hasher.hexdigest()}" == digest
    assert int(response.headers["content-length"]) == large.blob_sizes[digest]


def test_requests_on_one_connection_reach_the_registry_with_the_fronts_host(
    front: NginxFront, registry: TestRegistry, large: PushedImage
) -> None:
    """The client's Host goes to the registry (its Location headers name the front), and one
    keep-alive client connection carries many requests."""
    token = registry.token("repository:acme/large:pull,push")
    connections: set[object] = set()
    with client(front) as http:
        for _ in range(3):
            response = http.post(
                f"{front.url}/v2/acme/large/blobs/uploads/",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 202
            assert response.headers["location"].startswith(f"{front.url}/v2/acme/large/")
            stream = response.extensions["network_stream"]
            connections.add(id(stream.get_extra_info("socket")))
    assert len(connections) == 1


def test_the_front_keeps_its_files_under_its_prefix_and_stops_with_its_block(
    registry: TestRegistry, tmp_path: Path
) -> None:
    if find_nginx() is None:
        skip_or_fail_under_ci("nginx not installed: apt-get install nginx (CI installs it)")
    prefix = tmp_path / "front"
    with nginx_front(registry.host, prefix) as running:
        pid = int(running.pid_file.read_text())
        assert pid == running.process.pid
        assert f"listen {running.host} ssl;" in (prefix / "nginx.conf").read_text()
        os.kill(pid, 0)  # running
    assert running.process.returncode is not None
    assert not running.pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
