"""The token endpoint against a stand-in upstream and realm (pytest-httpserver)."""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rig.crev_process import serving_acme

TOKEN = {"token": "t0k3n", "access_token": "t0k3n", "expires_in": 300}


@pytest.fixture
def crev(start_crev, httpserver: HTTPServer):
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'},
    )
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    return start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", repo_prefix="acme"
    )


def realm_requests(httpserver: HTTPServer) -> list:
    return [request for request, _ in httpserver.log if request.path == "/token"]


def test_get_maps_every_scope_under_the_prefix(crev, httpserver: HTTPServer) -> None:
    response = httpx.get(
        f"{crev.url}/api/token",
        params=[
            ("service", "reg"),
            ("scope", "repository:tool:pull"),
            ("scope", "repository:team/x:pull,push repository(plugin):y:pull"),
            ("scope", "registry:catalog:*"),
            ("account", "alice"),
            ("offline_token", "true"),
            ("client_id", "docker"),
        ],
        headers={"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA=="},
    )
    assert response.status_code == 200
    assert response.json() == TOKEN
    (request,) = realm_requests(httpserver)
    assert parse_qsl(request.query_string.decode()) == [
        ("service", "reg"),
        ("account", "alice"),
        ("offline_token", "true"),
        ("client_id", "docker"),
        ("scope", "repository:acme/tool:pull"),
        ("scope", "repository:acme/team/x:pull,push"),
        ("scope", "repository(plugin):acme/y:pull"),
    ]
    assert request.headers["Authorization"] == "Basic YWxpY2U6d29uZGVybGFuZA=="


def test_realm_is_discovered_once_and_reused(crev, httpserver: HTTPServer) -> None:
    for _ in range(3):
        assert httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull").status_code == 200
    discoveries = [request for request, _ in httpserver.log if request.path == "/v2/"]
    assert len(discoveries) == 1
    assert len(realm_requests(httpserver)) == 3


def test_realm_learned_from_a_proxied_challenge_needs_no_discovery(
    crev, httpserver: HTTPServer
) -> None:
    assert httpx.get(f"{crev.url}/v2/").status_code == 401
    assert httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull").status_code == 200
    assert [request.path for request, _ in httpserver.log] == ["/v2/", "/token"]


def test_post_maps_form_scopes_and_passes_refresh_token(crev, httpserver: HTTPServer) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "r3fr3sh",
        "service": "reg",
        "client_id": "containerd",
        "scope": "repository:tool:pull repository:other:pull,push registry:catalog:*",
    }
    response = httpx.post(f"{crev.url}/api/token", data=form)
    assert response.status_code == 200
    (request,) = realm_requests(httpserver)
    assert request.method == "POST"
    assert parse_qs(request.get_data(as_text=True)) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["r3fr3sh"],
        "service": ["reg"],
        "client_id": ["containerd"],
        "scope": ["repository:acme/tool:pull repository:acme/other:pull,push"],
    }


def test_realm_errors_pass_back(crev, httpserver: HTTPServer) -> None:
    httpserver.clear_all_handlers()
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'}
    )
    denied = {"errors": [{"code": "DENIED", "message": "bad credentials"}]}
    httpserver.expect_request("/token").respond_with_json(denied, status=401)
    response = httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull")
    assert response.status_code == 401
    assert response.json() == denied
    assert response.headers["content-type"] == "application/json"


def test_client_cannot_choose_the_realm(crev, httpserver: HTTPServer) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        response = httpx.get(
            f"{crev.url}/api/token",
            params={"realm": other.url_for("/steal"), "scope": "repository:tool:pull"},
            headers={"Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
        )
        assert response.status_code == 200
        assert other.log == []
    finally:
        other.stop()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("scope", "repository:Tool:pull")], "invalid scope"),
        ([("scope", "nonsense")], "invalid scope"),
        ([("service", "a"), ("service", "b")], "more than one service"),
        ([("scope", "repository:x:pull")] * 65, "more than 64 scopes"),
    ],
)
def test_bad_token_requests_are_refused(crev, httpserver: HTTPServer, params, message) -> None:
    response = httpx.get(f"{crev.url}/api/token", params=params)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]
    assert realm_requests(httpserver) == []


def test_post_must_be_a_form(crev, httpserver: HTTPServer) -> None:
    response = httpx.post(f"{crev.url}/api/token", content=json.dumps({"scope": "x"}))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_other_methods_are_refused(crev) -> None:
    response = httpx.delete(f"{crev.url}/api/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_configured_realm_skips_discovery(start_crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        token_realm=httpserver.url_for("/token"),
    )
    assert httpx.get(f"{crev.url}/api/token?scope=repository:x:pull").status_code == 200
    assert [request.path for request, _ in httpserver.log] == ["/token"]


def test_a_token_the_realm_compresses_reaches_the_client_readable(
    start_crev, httpserver: HTTPServer
) -> None:
    # Go's HTTP client (docker, skopeo) sends `Accept-Encoding: gzip`, which crev passes on.
    compressed: list[bool] = []

    def gzip_if_asked(request: Request) -> Response:
        body = json.dumps(TOKEN).encode()
        compressed.append("gzip" in request.headers.get("Accept-Encoding", ""))
        if compressed[-1]:
            return Response(gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return Response(body)

    realm = httpserver.url_for("/token")
    httpserver.expect_request("/token").respond_with_handler(gzip_if_asked)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        token_realm=realm,
    )
    response = httpx.get(
        f"{crev.url}/api/token?scope=repository:tool:pull", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert json.loads(response.content) == TOKEN
    # The realm was asked for gzip, as the client asked crev, and compressed its answer: the
    # body above is one crev decoded, not one that came plain.
    assert compressed == [True]
