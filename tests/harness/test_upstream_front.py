"""The failover rig on its own: a mirror registry started with a copy of another's content (the
same digests, a realm of its own), and the front whose behaviour the failover tests switch."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from rig import PushedImage, TestRegistry, push_small_image, skopeo
from rig.registry import start_test_registry
from rig.upstream_front import Answered, Behaviour, UpstreamFront, run_upstream_front
from tests.support.registry_fixtures import run_test_registry


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with run_test_registry(tmp_path_factory.mktemp("primary")) as running:
        yield running


@pytest.fixture(scope="module")
def tool(primary: TestRegistry) -> PushedImage:
    return push_small_image(primary, "acme/tool", "1")


@pytest.fixture(scope="module")
def mirror(
    primary: TestRegistry, tool: PushedImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestRegistry]:
    with start_test_registry(tmp_path_factory.mktemp("mirror"), content_of=primary) as running:
        yield running


@pytest.fixture
def front(primary: TestRegistry) -> Iterator[UpstreamFront]:
    with run_upstream_front(primary.host) as running:
        primary.clear_logs()
        yield running


def digest_of(host: str, reference: str) -> str:
    result = skopeo("inspect", "--no-creds", "--tls-verify=false", f"docker://{host}/{reference}")
    return str(json.loads(result.stdout)["Digest"])


def challenge(url: str) -> str:
    return httpx.get(f"{url}/v2/", timeout=5).headers["www-authenticate"]


def test_the_mirror_has_the_primarys_content_and_a_realm_of_its_own(
    primary: TestRegistry, mirror: TestRegistry, tool: PushedImage
) -> None:
    assert (
        digest_of(mirror.host, "acme/tool:1")
        == tool.digest
        == digest_of(primary.host, "acme/tool:1")
    )
    assert mirror.realm != primary.realm
    assert f'realm="{mirror.realm}"' in challenge(mirror.url)


def test_the_front_forwards_to_the_registry(
    front: UpstreamFront, primary: TestRegistry, tool: PushedImage
) -> None:
    assert digest_of(front.host, "acme/tool:1") == tool.digest
    assert any(path == "/v2/acme/tool/manifests/1" for _, path in primary.access_log())
    assert front.connections[Behaviour.FORWARD] >= 1
    assert front.answered == []


def test_a_stopped_registry_refuses_connections_and_starts_again_on_the_same_port(
    front: UpstreamFront, tool: PushedImage
) -> None:
    port = front.port
    front.stop_registry()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{front.host}/v2/", timeout=2)
    front.forward()
    assert front.port == port
    assert httpx.get(f"http://{front.host}/v2/", timeout=2).status_code == 401


def test_a_silent_registry_accepts_and_never_answers(
    front: UpstreamFront, primary: TestRegistry
) -> None:
    front.silence()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"http://{front.host}/v2/", timeout=0.5)
    assert front.connections[Behaviour.SILENT] == 1
    assert primary.access_log() == []


def test_a_switch_closes_the_connections_kept_alive(front: UpstreamFront) -> None:
    with httpx.Client(timeout=0.5) as client:
        assert client.get(f"http://{front.host}/v2/").status_code == 401
        front.silence()
        # The kept-alive connection is gone; the new one is accepted and never answered.
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"http://{front.host}/v2/")
    assert front.connections == {Behaviour.FORWARD: 1, Behaviour.SILENT: 1}


@pytest.mark.parametrize(("status", "code"), [(503, "UNAVAILABLE"), (429, "TOOMANYREQUESTS")])
def test_a_registry_front_answers_an_outage_or_a_rate_limit(
    front: UpstreamFront, primary: TestRegistry, status: int, code: str
) -> None:
    front.answer(status)
    with httpx.Client(timeout=2) as client:
        got = client.get(f"http://{front.host}/v2/acme/tool/manifests/1")
        head = client.head(f"http://{front.host}/v2/acme/tool/blobs/sha256:00")
    assert got.status_code == status and head.status_code == status
    assert got.json()["errors"][0]["code"] == code
    assert got.headers["retry-after"] == "60"
    assert head.content == b""
    assert front.answered == [
        Answered("GET", "/v2/acme/tool/manifests/1", status),
        Answered("HEAD", "/v2/acme/tool/blobs/sha256:00", status),
    ]
    # One connection, kept alive, as a registry's front keeps it.
    assert front.connections == {Behaviour.STATUS: 1}
    assert primary.access_log() == []
