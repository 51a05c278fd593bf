"""crev's token endpoint (crev/token_endpoint.py) against a stand-in upstream realm: a client's
token request with every repository scope put under its route's namespace and nothing else
passed on, forwarded to the route's own realm, never to one the client names; and the URL the
endpoint is announced at."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest

from crev import token_endpoint
from crev.config import Settings
from crev.messages import Headers, Request, request_origin
from crev.names import Namespace
from crev.routing import Route, RouteTable
from crev.token_endpoint import MAX_SCOPES, PLACEHOLDER_TOKEN, serve_token
from crev.urls import URL, Origin
from tests.support.refusals import refused
from tests.support.routes import route_to
from tests.support.service_calls import body_of, json_of, request, settings_for

TOKEN = {"token": "upstream-token", "expires_in": 300}
FORM = ("Content-Type", "application/x-www-form-urlencoded")


@pytest.fixture
def realm(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    return httpserver


def settings(upstream: HTTPServer, **variables: str) -> Settings:
    return settings_for(
        upstream, repo_prefix="acme", token_realm=upstream.url_for("/token"), **variables
    )


def asked(upstream: HTTPServer) -> WerkzeugRequest:
    (token_request,) = [r for r, _ in upstream.log if r.path == "/token"]
    return token_request


def test_get_scopes_are_put_under_the_prefix(realm: HTTPServer) -> None:
    response = serve_token(
        request(
            "GET",
            "/api/token",
            "service=reg&scope=repository:tool:pull&scope=repository:a/b:pull,push",
            headers=[("Authorization", "Basic dXNlcjpwYXNz")],
        ),
        settings(realm),
    )
    assert response.status == 200
    assert json_of(response) == TOKEN
    token_request = asked(realm)
    assert parse_qsl(token_request.query_string.decode()) == [
        ("service", "reg"),
        ("scope", "repository:acme/tool:pull"),
        ("scope", "repository:acme/a/b:pull,push"),
    ]
    # The client's own login goes to the realm: it is the realm that grants or refuses it.
    assert token_request.headers["Authorization"] == "Basic dXNlcjpwYXNz"


def test_what_is_not_a_repository_scope_or_token_parameter_is_removed(realm: HTTPServer) -> None:
    serve_token(
        request(
            "GET",
            "/api/token",
            "scope=registry:catalog:*&scope=repository:tool:pull&scope=repository:tool:pull"
            "&realm=http://evil.example/&offline_token=true&client_id=docker&x=1",
        ),
        settings(realm),
    )
    assert parse_qsl(asked(realm).query_string.decode()) == [
        ("offline_token", "true"),
        ("client_id", "docker"),
        ("scope", "repository:acme/tool:pull"),
    ]


def test_post_is_a_form_with_space_separated_scopes(realm: HTTPServer) -> None:
    form = b"grant_type=password&username=u&password=p&scope=repository:tool:pull repository:x:pull"
    response = serve_token(
        request("POST", "/api/token", headers=[FORM], body=form), settings(realm)
    )
    assert response.status == 200
    token_request = asked(realm)
    assert token_request.method == "POST"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qsl(token_request.get_data(as_text=True)) == [
        ("grant_type", "password"),
        ("username", "u"),
        ("password", "p"),
        ("scope", "repository:acme/tool:pull repository:acme/x:pull"),
    ]


def test_post_that_is_no_form_is_refused(realm: HTTPServer) -> None:
    with refused() as refusal:
        serve_token(
            request(
                "POST", "/api/token", headers=[("Content-Type", "application/json")], body=b"{}"
            ),
            settings(realm),
        )
    assert (refusal.status, refusal.code) == (400, "UNSUPPORTED")
    assert refusal.message == "token POST must be a form, not 'application/json'"
    assert realm.log == []


def test_other_methods_are_refused_with_allow(realm: HTTPServer) -> None:
    with refused() as refusal:
        serve_token(request("PUT", "/api/token"), settings(realm))
    assert refusal.status == 405
    assert refusal.headers == [("Allow", "GET, POST")]
    assert realm.log == []


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("service=a&service=b", "UNSUPPORTED", "token request names more than one service"),
        (
            "&".join(f"scope=repository:r{i}:pull" for i in range(MAX_SCOPES + 1)),
            "UNSUPPORTED",
            f"more than {MAX_SCOPES} scopes requested",
        ),
        ("scope=repository:Tool:pull", "NAME_INVALID", None),
        ("scope=repository", "UNSUPPORTED", None),
    ],
)
def test_bad_token_requests_are_refused_before_the_realm_is_asked(
    realm: HTTPServer, query: str, code: str, message: str | None
) -> None:
    with refused() as refusal:
        serve_token(request("GET", "/api/token", query), settings(realm))
    assert (refusal.status, refusal.code) == (400, code)
    if message is not None:
        assert refusal.message == message
    assert realm.log == []


def test_a_route_with_server_credentials_gets_a_placeholder(realm: HTTPServer) -> None:
    response = serve_token(
        request("GET", "/api/token", "scope=repository:tool:pull"),
        settings(realm, upstream_token="ghp_secret"),
    )
    body = body_of(response)
    assert response.status == 200
    assert json.loads(body)["token"] == PLACEHOLDER_TOKEN
    assert b"ghp_secret" not in body
    assert realm.log == []


def test_the_scopes_name_the_route_and_its_realm(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/tools-token").respond_with_json({"token": "tools"})
    httpserver.expect_request("/rest-token").respond_with_json({"token": "rest"})
    upstream = f"http://127.0.0.1:{httpserver.port}"
    routed = Settings.from_env(
        {
            "CREV_ROUTES": f"tools/={upstream}/acme/tools;realm={upstream}/tools-token,"
            f" ={upstream}/acme;realm={upstream}/rest-token",
            "CREV_UPSTREAM_TIMEOUT": "5",
        }
    )
    response = serve_token(request("GET", "/api/token", "scope=repository:tools/cli:pull"), routed)
    assert json_of(response) == {"token": "tools"}
    # Without a scope (docker login), the realm's route hint says which registry is meant.
    response = serve_token(request("GET", "/api/token", "route="), routed)
    assert json_of(response) == {"token": "rest"}
    assert [(r.path, r.args.getlist("scope")) for r, _ in httpserver.log] == [
        ("/tools-token", ["repository:acme/tools/cli:pull"]),
        ("/rest-token", []),
    ]
    with refused() as refusal:
        serve_token(
            request("GET", "/api/token", "scope=repository:tools/cli:pull&scope=repository:x:pull"),
            routed,
        )
    assert (refusal.status, refusal.code) == (400, "DENIED")
    with refused() as refusal:
        serve_token(request("GET", "/api/token", "route=nowhere/"), routed)
    assert refusal.message == "no route 'nowhere/'"


def test_the_realms_answer_is_passed_on(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json(
        {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]},
        status=401,
        headers={"Set-Cookie": "session=1", "WWW-Authenticate": 'Basic realm="reg"'},
    )
    response = serve_token(
        request("GET", "/api/token", "scope=repository:tool:pull"), settings(httpserver)
    )
    assert response.status == 401
    assert response.upstream_status == 401
    assert json_of(response)["errors"][0]["message"] == "bad login"
    # Cookies would be set on the vanity domain.
    assert "Set-Cookie" not in response.headers


# --- token_url: where crev's token endpoint is announced --------------------------------------

GHCR_ROUTE = route_to("", Origin("https", "ghcr.io"), Namespace("acme"))
TOOLS_ROUTE = route_to("tools/", Origin("https", "ghcr.io"), Namespace("acme/tools"))


def make_request(origin: str | Origin) -> Request:
    if isinstance(origin, str):
        origin = URL.parse(origin).origin
    return Request("GET", "/v2/", "", Headers(), origin)


def token_url_settings(token_url: str, *routes: Route) -> Settings:
    return Settings(routes=RouteTable(routes or (GHCR_ROUTE,)), token_url=token_url)


@pytest.mark.parametrize(
    ("token_url", "origin", "endpoint"),
    [
        ("/api/token", "https://vanity.example", "https://vanity.example/api/token"),
        ("/api/token", "http://127.0.0.1:8080", "http://127.0.0.1:8080/api/token"),
        ("/token?x=1", "https://vanity.example", "https://vanity.example/token?x=1"),
        ("https://auth.acme.dev/token", "https://vanity.example", "https://auth.acme.dev/token"),
        ("http://auth.acme.dev:81/t", "https://vanity.example", "http://auth.acme.dev:81/t"),
    ],
)
def test_token_endpoint(token_url: str, origin: str, endpoint: str) -> None:
    settings = token_url_settings(token_url)
    assert str(token_endpoint.token_url(make_request(origin), settings, GHCR_ROUTE)) == endpoint


@pytest.mark.parametrize(
    ("token_url", "route", "endpoint"),
    [
        ("/api/token", TOOLS_ROUTE, "https://v.dev/api/token?route=tools%2F"),
        ("/api/token", GHCR_ROUTE, "https://v.dev/api/token?route="),
        ("/api/token?x=1", TOOLS_ROUTE, "https://v.dev/api/token?x=1&route=tools%2F"),
        ("https://a.dev/t", TOOLS_ROUTE, "https://a.dev/t?route=tools%2F"),
    ],
)
def test_token_endpoint_names_the_route_when_there_are_several(
    token_url: str, route: Route, endpoint: str
) -> None:
    settings = token_url_settings(token_url, GHCR_ROUTE, TOOLS_ROUTE)
    assert str(token_endpoint.token_url(make_request("https://v.dev"), settings, route)) == endpoint


def test_token_endpoint_from_env_and_forwarded_headers() -> None:
    settings = Settings.from_env({"CREV_TOKEN_URL": "/api/token"})
    origin = request_origin(
        Headers(
            [("Host", "internal"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "v.dev")]
        ),
        "http",
    )
    route = settings.routes.default
    assert (
        str(token_endpoint.token_url(make_request(origin), settings, route))
        == "https://v.dev/api/token"
    )
