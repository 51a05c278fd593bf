"""The `/v2/` ping every pull starts with, against stand-in upstreams: crev asks the upstream
once, and answers the next pings that bring no login as the upstream answered (the same status,
challenge pointed at crev, API version, content type and body) without asking it again; a ping
with a login, and the first after the upstream's challenge changed, go upstream; a route whose
upstream went down still answers the ping it learned, so a pull can start on its mirror."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest
from pytest_httpserver import HTTPServer

from rig.crev_process import serving_acme
from tests.handler.test_mirrors import logged
from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import closed_port
from tests.support.registry_stand_in import StandIn, manifest, run_stand_in

# What distribution answers a ping without a token.
UNAUTHORIZED = json.dumps(
    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]},
    separators=(",", ":"),
)
# The headers of a ping's answer a client reads: the challenge, the API version, the body's type
# and length.
SHOWN = ("www-authenticate", "docker-distribution-api-version", "content-type", "content-length")


def challenging(server: HTTPServer, realm: str, service: str = "registry") -> None:
    server.expect_request("/v2/").respond_with_data(
        UNAUTHORIZED,
        401,
        {
            "Content-Type": "application/json; charset=utf-8",
            "Docker-Distribution-API-Version": "registry/2.0",
            "WWW-Authenticate": f'Bearer realm="{realm}",service="{service}"',
            "X-Request-Id": "one-answer",
        },
    )


def pings(server: HTTPServer) -> int:
    return sum(1 for request, _ in server.log if request.path == "/v2/")


def shown(response: httpx.Response) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in SHOWN}


@pytest.fixture
def crev(start_crev: Callable[..., CrevServer], httpserver: HTTPServer) -> CrevServer:
    return start_crev(**serving_acme(f"127.0.0.1:{httpserver.port}"))


def test_the_first_ping_goes_upstream_and_the_next_are_answered_as_it_was(
    crev: CrevServer, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    challenging(httpserver, "https://auth.example/token")
    caplog.set_level(logging.INFO, logger="crev")
    first = httpx.get(f"{crev.url}/v2/")
    assert pings(httpserver) == 1
    assert first.status_code == 401
    assert shown(first) == {
        "www-authenticate": f'Bearer realm="{crev.url}/api/token",service="registry"',
        "docker-distribution-api-version": "registry/2.0",
        "content-type": "application/json; charset=utf-8",
        "content-length": str(len(UNAUTHORIZED)),
    }
    assert first.json() == json.loads(UNAUTHORIZED)
    # The upstream's other headers are its answer's: the first client gets them.
    assert first.headers["x-request-id"] == "one-answer"
    with httpx.Client() as client:
        for _ in range(3):
            again = client.get(f"{crev.url}/v2/")
            assert (again.status_code, shown(again), again.content) == (
                first.status_code,
                shown(first),
                first.content,
            )
            assert "x-request-id" not in again.headers
    head = httpx.head(f"{crev.url}/v2/")
    assert (head.status_code, shown(head), head.content) == (401, shown(first), b"")
    assert pings(httpserver) == 1
    assert len(httpserver.log) == 1
    assert logged(caplog, "GET /v2/ 401 upstream=401 ")
    assert logged(caplog, "GET /v2/ 401 upstream=- ")


def test_the_challenge_shows_the_host_each_client_asked(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    challenging(httpserver, "https://auth.example/token")
    httpx.get(f"{crev.url}/v2/")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "acme.dev"}
    answer = httpx.get(f"{crev.url}/v2/", headers=forwarded)
    assert answer.headers["www-authenticate"] == (
        'Bearer realm="https://acme.dev/api/token",service="registry"'
    )
    assert pings(httpserver) == 1


def test_a_ping_with_a_login_goes_upstream_every_time(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    challenging(httpserver, "https://auth.example/token")
    httpx.get(f"{crev.url}/v2/")
    login = {"Authorization": "Basic dXNlcjpwYXNz"}
    for count in (2, 3):
        assert httpx.get(f"{crev.url}/v2/", headers=login).status_code == 401
        assert pings(httpserver) == count
        request, _ = httpserver.log[-1]
        assert request.headers["Authorization"] == "Basic dXNlcjpwYXNz"


def test_a_changed_challenge_seen_on_any_answer_is_asked_for_again(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    challenging(httpserver, "https://auth.example/token")
    httpx.get(f"{crev.url}/v2/")
    httpx.get(f"{crev.url}/v2/")
    assert pings(httpserver) == 1
    # The upstream moves its realm; a client's manifest read shows it before any ping does.
    httpserver.clear_all_handlers()
    challenging(httpserver, "https://auth.example/v2-token", service="moved")
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        UNAUTHORIZED,
        401,
        {"WWW-Authenticate": 'Bearer realm="https://auth.example/v2-token",service="moved"'},
    )
    assert httpx.get(f"{crev.url}/v2/tool/manifests/1").status_code == 401
    moved = httpx.get(f"{crev.url}/v2/")
    assert pings(httpserver) == 2
    assert moved.headers["www-authenticate"] == (
        f'Bearer realm="{crev.url}/api/token",service="moved"'
    )
    # And the new answer is the one kept.
    assert (
        httpx.get(f"{crev.url}/v2/").headers["www-authenticate"]
        == (moved.headers["www-authenticate"])
    )
    assert pings(httpserver) == 2


def test_an_answer_with_the_same_challenge_keeps_what_was_learned(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    challenging(httpserver, "https://auth.example/token")
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        UNAUTHORIZED,
        401,
        {
            "WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="registry",'
            'scope="repository:acme/tool:pull"'
        },
    )
    httpx.get(f"{crev.url}/v2/")
    httpx.get(f"{crev.url}/v2/tool/manifests/1")
    httpx.get(f"{crev.url}/v2/")
    assert pings(httpserver) == 1


def test_an_open_upstream_is_answered_200_from_what_was_learned(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", 200, {"Content-Type": "application/json"}
    )
    answers = [httpx.get(f"{crev.url}/v2/") for _ in range(3)]
    assert [(answer.status_code, answer.content) for answer in answers] == [(200, b"{}")] * 3
    assert "www-authenticate" not in answers[-1].headers
    assert pings(httpserver) == 1


@pytest.mark.parametrize("status", [500, 503, 429, 404])
def test_an_answer_of_the_moment_is_not_kept(
    crev: CrevServer, httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("down", status)
    assert [httpx.get(f"{crev.url}/v2/").status_code for _ in range(2)] == [status] * 2
    assert pings(httpserver) == 2


def test_the_discovery_ping_of_the_token_endpoint_teaches_the_ping(
    crev: CrevServer, httpserver: HTTPServer
) -> None:
    challenging(httpserver, httpserver.url_for("/token"))
    httpserver.expect_request("/token").respond_with_json({"token": "t", "expires_in": 300})
    # A client that asks for a token before it pings (the token function's own process on
    # Vercel, a client that kept the realm): crev's discovery learns what a ping gets.
    assert httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull").status_code == 200
    assert httpx.get(f"{crev.url}/v2/").status_code == 401
    assert [request.path for request, _ in httpserver.log] == ["/v2/", "/token"]


def test_forget_asks_again(crev: CrevServer, httpserver: HTTPServer) -> None:
    challenging(httpserver, "https://auth.example/token")
    httpx.get(f"{crev.url}/v2/")
    crev.forget_learned_state()
    httpx.get(f"{crev.url}/v2/")
    assert pings(httpserver) == 2


def test_a_server_side_route_with_its_primary_down_answers_the_ping_it_learned(
    start_crev: Callable[..., CrevServer], httpserver: HTTPServer
) -> None:
    primary = StandIn(httpserver)
    primary.answers["/v2/acme/tool/manifests/1"] = lambda _: manifest("primary")
    with run_stand_in() as mirror:
        mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
        crev = start_crev(
            registry_host=primary.host,
            registry_scheme="http",
            repo_prefix="acme",
            upstream_token="crev-pat",
            mirror_registry_host=mirror.host,
            mirror_registry_scheme="http",
            mirror_repo_prefix="copy",
            mirror_upstream_token="mirror-pat",
        )
        first = httpx.get(f"{crev.url}/v2/")
        assert first.status_code == 200
        (ping, _) = httpserver.log[0]
        # Asked as crev asks for such a route: with its own token.
        assert ping.headers["Authorization"] == "Bearer crev-pat"
        assert httpx.get(f"{crev.url}/v2/tool/manifests/1").json()["label"] == "primary"
        httpserver.stop()
        try:
            again = httpx.get(f"{crev.url}/v2/")
            assert (again.status_code, again.content) == (200, first.content)
            assert "www-authenticate" not in again.headers
            read = httpx.get(f"{crev.url}/v2/tool/manifests/1")
            assert (read.status_code, read.json()["label"]) == (200, "mirror")
            assert mirror.asked() == [("GET", "/v2/copy/tool/manifests/1")]
        finally:
            httpserver.start()


def test_a_server_side_route_keeps_no_ping_its_credentials_did_not_pass(
    start_crev: Callable[..., CrevServer], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        UNAUTHORIZED, 401, {"Content-Type": "application/json"}
    )
    crev = start_crev(**serving_acme(f"127.0.0.1:{httpserver.port}"), upstream_token="revoked")
    assert [httpx.get(f"{crev.url}/v2/").status_code for _ in range(2)] == [401, 401]
    assert pings(httpserver) == 2


def test_a_ping_no_upstream_answered_yet_fails_over_to_the_mirror(
    start_crev: Callable[..., CrevServer], caplog: pytest.LogCaptureFixture
) -> None:
    with run_stand_in() as mirror:
        mirror.answers["/v2/copy/tool/manifests/1"] = lambda _: manifest("mirror")
        crev = start_crev(
            registry_host=f"127.0.0.1:{closed_port()}",
            registry_scheme="http",
            repo_prefix="acme",
            upstream_token="crev-pat",
            mirror_registry_host=mirror.host,
            mirror_registry_scheme="http",
            mirror_repo_prefix="copy",
            mirror_upstream_token="mirror-pat",
        )
        caplog.set_level(logging.INFO, logger="crev")
        answer = httpx.get(f"{crev.url}/v2/")
        assert (answer.status_code, answer.content) == (200, b"{}")
        assert "www-authenticate" not in answer.headers
        assert logged(caplog, f"GET /v2/ 200 upstream=unreachable mirror=200@{mirror.host} ")
        (ping, _) = mirror.server.log[0]
        assert (ping.path, ping.headers["Authorization"]) == ("/v2/", "Bearer mirror-pat")
        read = httpx.get(f"{crev.url}/v2/tool/manifests/1")
        assert (read.status_code, read.json()["label"]) == (200, "mirror")
        # The mirror's ping was learned: the next is answered from it, the primary skipped.
        assert httpx.get(f"{crev.url}/v2/").status_code == 200
        assert logged(caplog, f"GET /v2/ 200 upstream=skipped mirror=200@{mirror.host} ")
        assert [request.path for request, _ in mirror.server.log].count("/v2/") == 1
