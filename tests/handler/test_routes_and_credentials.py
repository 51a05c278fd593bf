"""Several routes on one domain, Docker Hub's official images, and server-side credentials,
against stand-in upstreams."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from pytest_httpserver import HTTPServer

from rig.crev_process import serving_acme

TOKEN = {"token": "t0k3n", "expires_in": 300}


@pytest.fixture
def second_upstream() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


def challenge(server: HTTPServer, scope: str | None = None) -> dict[str, str]:
    value = f'Bearer realm="{server.url_for("/token")}",service="svc-{server.port}"'
    if scope:
        value += f',scope="{scope}"'
    return {"WWW-Authenticate": value}


@pytest.fixture
def routed(start_crev, httpserver: HTTPServer, second_upstream: HTTPServer):
    tools = f"http://127.0.0.1:{httpserver.port}/acme/tools"
    rest = f"http://127.0.0.1:{second_upstream.port}/acme"
    return start_crev(routes=f"tools/={tools}, ={rest}")


def test_longest_prefix_picks_the_upstream(routed, httpserver, second_upstream) -> None:
    httpserver.expect_request("/v2/acme/tools/cli/manifests/1").respond_with_data("tools")
    second_upstream.expect_request("/v2/acme/cli/manifests/1").respond_with_data("rest")
    second_upstream.expect_request("/v2/acme/toolsx/manifests/1").respond_with_data("rest2")
    assert httpx.get(f"{routed.url}/v2/tools/cli/manifests/1").text == "tools"
    assert httpx.get(f"{routed.url}/v2/cli/manifests/1").text == "rest"
    assert httpx.get(f"{routed.url}/v2/toolsx/manifests/1").text == "rest2"


def test_challenges_name_the_route_and_its_scopes(routed, httpserver, second_upstream) -> None:
    httpserver.expect_request("/v2/acme/tools/cli/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge(httpserver, "repository:acme/tools/cli:pull")
    )
    response = httpx.get(f"{routed.url}/v2/tools/cli/manifests/1")
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{routed.url}/api/token?route=tools%2F",service="svc-{httpserver.port}",'
        'scope="repository:tools/cli:pull"'
    )


def test_token_requests_go_to_the_route_realm(routed, httpserver, second_upstream) -> None:
    for server in (httpserver, second_upstream):
        server.expect_request("/v2/").respond_with_data("{}", status=401, headers=challenge(server))
        server.expect_request("/token").respond_with_json(TOKEN)
    response = httpx.get(
        f"{routed.url}/api/token",
        params={"route": "tools/", "scope": "repository:tools/cli:pull", "service": "s"},
    )
    assert response.status_code == 200
    (token_request,) = [r for r, _ in httpserver.log if r.path == "/token"]
    assert parse_qsl(token_request.query_string.decode()) == [
        ("service", "s"),
        ("scope", "repository:acme/tools/cli:pull"),
    ]
    assert not [r for r, _ in second_upstream.log if r.path == "/token"]
    # No scope at all (docker login): the realm's route hint decides.
    assert httpx.get(f"{routed.url}/api/token", params={"route": ""}).status_code == 200
    assert [r.path for r, _ in second_upstream.log] == ["/v2/", "/token"]


def test_token_request_spanning_two_routes_is_refused(routed, httpserver, second_upstream) -> None:
    response = httpx.get(
        f"{routed.url}/api/token",
        params=[("scope", "repository:tools/cli:pull"), ("scope", "repository:cli:pull")],
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert "'tools/'" in error["message"] and "''" in error["message"]
    assert httpserver.log == [] and second_upstream.log == []


def test_unknown_route_hint_is_refused(routed) -> None:
    response = httpx.get(f"{routed.url}/api/token", params={"route": "nope/"})
    assert response.status_code == 400


def test_name_outside_every_route_is_unknown(start_crev, httpserver) -> None:
    crev = start_crev(routes=f"tools/=http://127.0.0.1:{httpserver.port}/acme")
    response = httpx.get(f"{crev.url}/v2/other/manifests/1")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert httpserver.log == []


def test_routes_and_single_upstream_settings_conflict(start_crev, httpserver) -> None:
    crev = start_crev(routes="=ghcr.io/acme", registry_host="ghcr.io")
    response = httpx.get(f"{crev.url}/v2/")
    assert response.status_code == 500
    assert "CREV_ROUTES" in response.json()["errors"][0]["message"]


def test_official_images_map_both_ways(start_crev, httpserver) -> None:
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", official_images="1"
    )
    httpserver.expect_request("/v2/library/alpine/manifests/3").respond_with_data(
        "{}", status=401, headers=challenge(httpserver, "repository:library/alpine:pull")
    )
    httpserver.expect_request("/v2/user/app/manifests/1").respond_with_data("user")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    response = httpx.get(f"{crev.url}/v2/alpine/manifests/3")
    assert 'scope="repository:alpine:pull"' in response.headers["www-authenticate"]
    assert httpx.get(f"{crev.url}/v2/user/app/manifests/1").text == "user"
    httpx.get(f"{crev.url}/api/token", params={"scope": "repository:alpine:pull"})
    (token_request,) = [r for r, _ in httpserver.log if r.path == "/token"]
    assert token_request.args.getlist("scope") == ["repository:library/alpine:pull"]


def test_docker_hub_rate_limit_headers_pass(start_crev, httpserver) -> None:
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", official_images="1"
    )
    httpserver.expect_request("/v2/library/alpine/manifests/3").respond_with_data(
        "{}",
        headers={
            "ratelimit-limit": "100;w=21600",
            "ratelimit-remaining": "76;w=21600",
            "docker-ratelimit-source": "203.0.113.9",
        },
    )
    response = httpx.get(f"{crev.url}/v2/alpine/manifests/3")
    assert response.headers["ratelimit-limit"] == "100;w=21600"
    assert response.headers["ratelimit-remaining"] == "76;w=21600"
    assert response.headers["docker-ratelimit-source"] == "203.0.113.9"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_server_side_credentials_serve_anonymous_clients(start_crev, httpserver) -> None:
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        upstream_username="robot",
        upstream_password="s3cret",
    )
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_request(
        "/token", headers={"Authorization": basic("robot", "s3cret")}
    ).respond_with_json({"token": "server-token", "expires_in": 300})
    httpserver.expect_request(
        "/v2/acme/tool/manifests/1", headers={"Authorization": "Bearer server-token"}
    ).respond_with_data("manifest")
    for _ in range(2):
        response = httpx.get(
            f"{crev.url}/v2/tool/manifests/1", headers={"Authorization": "Bearer client-token"}
        )
        assert response.status_code == 200
        assert response.text == "manifest"
    token_requests = [r for r, _ in httpserver.log if r.path == "/token"]
    assert len(token_requests) == 1, "the token is cached"
    assert token_requests[0].args.getlist("scope") == ["repository:acme/tool:pull"]
    assert token_requests[0].args["service"] == f"svc-{httpserver.port}"
    manifests = [r for r, _ in httpserver.log if r.path.startswith("/v2/acme")]
    assert all(r.headers["Authorization"] == "Bearer server-token" for r in manifests)


def test_server_side_credentials_hide_challenges_and_token_endpoint(start_crev, httpserver) -> None:
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        upstream_token="static-pat",
    )
    httpserver.expect_request("/v2/denied/manifests/1").respond_with_data(
        '{"errors":[{"code":"DENIED","message":"no"}]}',
        status=401,
        headers=challenge(httpserver, "repository:denied:pull"),
    )
    response = httpx.get(f"{crev.url}/v2/denied/manifests/1")
    assert response.status_code == 401
    assert "www-authenticate" not in response.headers
    assert all(r.headers["Authorization"] == "Bearer static-pat" for r, _ in httpserver.log)
    token = httpx.get(f"{crev.url}/api/token", params={"scope": "repository:denied:pull"})
    assert token.status_code == 200
    assert token.json()["token"] == "crev-served-with-server-credentials"
    assert "static-pat" not in token.text
    assert [r.path for r, _ in httpserver.log] == ["/v2/denied/manifests/1"]


def test_expired_server_token_is_refreshed_once(start_crev, httpserver) -> None:
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        upstream_username="robot",
        upstream_password="s3cret",
    )
    httpserver.expect_ordered_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_ordered_request("/token").respond_with_json(
        {"token": "old", "expires_in": 300}
    )
    httpserver.expect_ordered_request("/v2/x/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_ordered_request("/token").respond_with_json(
        {"token": "new", "expires_in": 300}
    )
    httpserver.expect_ordered_request(
        "/v2/x/manifests/1", headers={"Authorization": "Bearer new"}
    ).respond_with_data("ok")
    response = httpx.get(f"{crev.url}/v2/x/manifests/1")
    assert response.status_code == 200
    assert response.text == "ok"
