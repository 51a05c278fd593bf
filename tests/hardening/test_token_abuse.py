"""Token endpoint abuse: malformed and foreign scopes, floods, service games, and attempts to
make crev contact a server the request names (it must only ever ask the upstream's realm)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import (
    Behaviour,
    RawRequest,
    RawUpstream,
    healthy,
    respond,
)
from tests.support.wire import exchange, http_error, is_registry_error, parse, port_of, send

TOKEN_BODY = b'{"token":"upstream-token","access_token":"upstream-token","expires_in":300}'


def token_service(upstream: RawUpstream) -> None:
    """The upstream challenges on /v2/ with its own /token realm, which hands out a token."""
    realm = f"http://{upstream.host}/token"

    def route(request: RawRequest) -> Behaviour:
        if request.path == "/v2/":
            challenge = f'Bearer realm="{realm}",service="reg"'
            return respond(401, b"{}", [("WWW-Authenticate", challenge)])
        if request.path == "/token":
            return respond(200, TOKEN_BODY)
        return healthy(request)

    upstream.reset(route)


@pytest.fixture
def token_crev(crev: CrevServer, upstream: RawUpstream) -> CrevServer:
    token_service(upstream)
    return crev


def realm_requests(upstream: RawUpstream) -> list[RawRequest]:
    return [request for request in upstream.requests if request.path == "/token"]


def scopes_asked(request: RawRequest) -> list[str]:
    if request.method == "POST":
        form = parse_qsl(request.body.decode(), keep_blank_values=True)
        return [scope for key, value in form if key == "scope" for scope in value.split()]
    return [value for key, value in parse_qsl(request.query) if key == "scope"]


@pytest.fixture
def get_token(http: httpx.Client) -> Callable[..., httpx.Response]:
    def get(
        crev: CrevServer, params: list[tuple[str, str]], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return http.get(f"{crev.url}/api/token", params=params, headers=headers)

    return get


@pytest.fixture
def post_token(http: httpx.Client) -> Callable[..., httpx.Response]:
    def post(crev: CrevServer, form: list[tuple[str, str]]) -> httpx.Response:
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return http.post(f"{crev.url}/api/token", content=body, headers=headers)

    return post


# ------------------------------------------------------------------ malformed scopes

MALFORMED_SCOPES = [
    "repository:tool",
    "repository::pull",
    "repository:tool:",
    ":tool:pull",
    "repository:Tool:pull",
    "Repository:tool:pull",
    "repository:tool:PULL",
    "repository:tool:pull,,push",
    "repository:tool:pu ll",
    "repository(:tool:pull",
    "repository():tool:pull",
    "repository:../x:pull",
    "repository:acme/../x:pull",
    "repository:%2e%2e/x:pull",
    "repository:tool%2Fx:pull",
    "repository:a//b:pull",
    "repository:/tool:pull",
    "repository:tool\\x:pull",
    "repository:t\u03bfol:pull",
    "repository:tool\x00:pull",
    "repository:" + "a" * 300 + ":pull",
    "repository:127.0.0.1:9/x:pull",
    "repository:evil.example/x@y:pull",
]


@pytest.mark.parametrize("scope", MALFORMED_SCOPES)
def test_malformed_scopes_are_400_and_nothing_is_asked(
    token_crev: CrevServer,
    upstream: RawUpstream,
    scope: str,
    get_token: Callable[..., httpx.Response],
) -> None:
    response = get_token(token_crev, [("service", "reg"), ("scope", scope)])
    http_error(response, 400, ("UNSUPPORTED", "NAME_INVALID"))
    assert upstream.saw_nothing()


@pytest.mark.parametrize("scope", MALFORMED_SCOPES[:8])
def test_malformed_scopes_in_a_form_are_400(
    token_crev: CrevServer,
    upstream: RawUpstream,
    scope: str,
    post_token: Callable[..., httpx.Response],
) -> None:
    response = post_token(
        token_crev, [("grant_type", "password"), ("service", "reg"), ("scope", scope)]
    )
    http_error(response, 400, ("UNSUPPORTED", "NAME_INVALID"))
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ other resource types


def test_other_resource_types_are_removed_not_forwarded(
    token_crev: CrevServer, upstream: RawUpstream, get_token: Callable[..., httpx.Response]
) -> None:
    response = get_token(
        token_crev,
        [
            ("service", "reg"),
            ("scope", "registry:catalog:*"),
            ("scope", "repository:tool:pull"),
            ("scope", "foo:bar:baz"),
            ("scope", "registry(x):catalog:*"),
            ("scope", "repository(plugin):x:pull"),
        ],
    )
    assert response.status_code == 200
    (request,) = realm_requests(upstream)
    assert scopes_asked(request) == ["repository:acme/tool:pull", "repository(plugin):acme/x:pull"]


def test_a_catalog_scope_alone_asks_for_no_scope(
    token_crev: CrevServer, upstream: RawUpstream, get_token: Callable[..., httpx.Response]
) -> None:
    response = get_token(token_crev, [("service", "reg"), ("scope", "registry:catalog:*")])
    assert response.status_code == 200
    (request,) = realm_requests(upstream)
    assert scopes_asked(request) == []
    assert "catalog" not in request.target


def test_other_resource_types_are_removed_from_a_form(
    token_crev: CrevServer, upstream: RawUpstream, post_token: Callable[..., httpx.Response]
) -> None:
    response = post_token(
        token_crev,
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("service", "reg"),
            ("scope", "registry:catalog:* repository:tool:pull foo:bar:baz"),
        ],
    )
    assert response.status_code == 200
    (request,) = realm_requests(upstream)
    assert request.method == "POST"
    assert scopes_asked(request) == ["repository:acme/tool:pull"]
    assert b"catalog" not in request.body


# ------------------------------------------------------------------ floods


@pytest.mark.parametrize("count", [65, 300])
def test_hundreds_of_scopes_are_400(
    token_crev: CrevServer,
    upstream: RawUpstream,
    count: int,
    get_token: Callable[..., httpx.Response],
    post_token: Callable[..., httpx.Response],
) -> None:
    scopes = [f"repository:t{i}:pull" for i in range(count)]
    as_params = get_token(token_crev, [("service", "reg"), *(("scope", s) for s in scopes)])
    http_error(as_params, 400)
    one_param = get_token(token_crev, [("service", "reg"), ("scope", " ".join(scopes))])
    http_error(one_param, 400)
    form = post_token(token_crev, [("service", "reg"), ("scope", " ".join(scopes))])
    http_error(form, 400)
    assert upstream.saw_nothing()


def test_the_same_scope_repeated_hundreds_of_times_is_400(
    token_crev: CrevServer, upstream: RawUpstream, get_token: Callable[..., httpx.Response]
) -> None:
    response = get_token(token_crev, [("scope", "repository:tool:pull")] * 500)
    http_error(response, 400)
    assert upstream.saw_nothing()


def test_a_pull_sized_scope_list_is_served(
    token_crev: CrevServer, upstream: RawUpstream, get_token: Callable[..., httpx.Response]
) -> None:
    scopes = [f"repository:t{i}:pull" for i in range(64)]
    response = get_token(token_crev, [("service", "reg"), *(("scope", s) for s in scopes)])
    assert response.status_code == 200
    (request,) = realm_requests(upstream)
    assert scopes_asked(request) == [f"repository:acme/t{i}:pull" for i in range(64)]


def test_a_huge_form_is_refused(
    token_crev: CrevServer, upstream: RawUpstream, http: httpx.Client
) -> None:
    response = http.post(
        f"{token_crev.url}/api/token",
        content=b"scope=" + b"a" * (1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    http_error(response, (400, 413))
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ service


def test_duplicate_service_is_400(
    token_crev: CrevServer,
    upstream: RawUpstream,
    get_token: Callable[..., httpx.Response],
    http: httpx.Client,
) -> None:
    params = [("service", "reg"), ("service", "other"), ("scope", "repository:tool:pull")]
    http_error(get_token(token_crev, params), 400)
    form = http.post(
        f"{token_crev.url}/api/token",
        content=b"service=reg&service=other&scope=repository:tool:pull",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    http_error(form, 400)
    assert upstream.saw_nothing()


def test_absent_service_is_forwarded_without_inventing_one(
    token_crev: CrevServer, upstream: RawUpstream, get_token: Callable[..., httpx.Response]
) -> None:
    response = get_token(token_crev, [("scope", "repository:tool:pull")])
    assert response.status_code == 200
    (request,) = realm_requests(upstream)
    assert scopes_asked(request) == ["repository:acme/tool:pull"]


# ------------------------------------------------------------------ not an open proxy


def test_a_client_supplied_realm_or_host_is_never_contacted(
    token_crev: CrevServer,
    upstream: RawUpstream,
    witness: RawUpstream,
    get_token: Callable[..., httpx.Response],
    post_token: Callable[..., httpx.Response],
) -> None:
    other = witness.url + "/"
    params = [
        ("service", "reg"),
        ("scope", "repository:tool:pull"),
        ("realm", other),
        ("host", witness.host),
        ("url", other),
        ("redirect_uri", other),
    ]
    assert get_token(token_crev, params).status_code == 200
    assert post_token(token_crev, params).status_code == 200
    assert witness.saw_nothing()
    assert [request.path for request in realm_requests(upstream)] == ["/token", "/token"]


def test_forwarded_and_host_headers_never_choose_where_crev_asks(
    token_crev: CrevServer,
    upstream: RawUpstream,
    witness: RawUpstream,
    get_token: Callable[..., httpx.Response],
    http: httpx.Client,
) -> None:
    for headers in (
        {"X-Forwarded-Host": witness.host},
        {"Host": witness.host},
        {"X-Forwarded-Host": witness.host, "X-Forwarded-Proto": "https"},
        {"X-Forwarded-For": "127.0.0.1", "Forwarded": f"host={witness.host}"},
        {"X-Original-URL": f"{witness.url}/token", "X-Rewrite-URL": f"{witness.url}/token"},
    ):
        response = get_token(token_crev, [("scope", "repository:tool:pull")], headers=headers)
        assert response.status_code == 200, headers
        proxied = http.get(f"{token_crev.url}/v2/tool/manifests/1", headers=headers)
        assert proxied.status_code == 200, headers
    assert witness.saw_nothing()
    assert {request.path for request in upstream.requests} <= {
        "/v2/",
        "/token",
        "/v2/acme/tool/manifests/1",
    }


@pytest.mark.parametrize(
    "target",
    [
        "http://{other}/api/token?scope=repository:tool:pull",
        "http://{other}/v2/",
        "http://{other}/v2/tool/manifests/1",
        "https://{other}/v2/",
        "//{other}/v2/",
        "{other}",
    ],
)
def test_absolute_uri_request_lines_never_reach_the_named_server(
    token_crev: CrevServer, upstream: RawUpstream, witness: RawUpstream, target: str
) -> None:
    named = target.format(other=witness.host)
    response = send(port_of(token_crev), named, host=witness.host)
    assert response.status < 500, response.raw[:300]
    from_upstream = any(
        request.path in ("/v2/", "/token") or request.path.startswith("/v2/acme/")
        for request in upstream.requests
    )
    assert from_upstream or is_registry_error(response.header("content-type"), response.body)
    assert witness.saw_nothing()


def test_connect_is_not_a_tunnel(
    token_crev: CrevServer, upstream: RawUpstream, witness: RawUpstream
) -> None:
    data = f"CONNECT {witness.host} HTTP/1.1\r\nHost: {witness.host}\r\nConnection: close\r\n\r\n"
    data = data.encode()
    response = parse(exchange(port_of(token_crev), data, timeout=3))
    assert response.status in (400, 404, 405), response.raw[:300]
    assert is_registry_error(response.header("content-type"), response.body)
    assert witness.saw_nothing()
    assert upstream.saw_nothing()


def test_a_realm_redirect_is_passed_back_not_followed(
    crev: CrevServer,
    upstream: RawUpstream,
    witness: RawUpstream,
    get_token: Callable[..., httpx.Response],
) -> None:
    token_service(upstream)
    realm_route = upstream.route

    def route(request: RawRequest) -> Behaviour | None:
        if request.path == "/token":
            return respond(307, b"", [("Location", f"{witness.url}/token?stolen=1")])
        return realm_route(request)

    upstream.route = route
    response = get_token(
        crev,
        [("scope", "repository:tool:pull")],
        headers={"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA=="},
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"{witness.url}/token?stolen=1"
    assert witness.saw_nothing()


def test_a_chunked_token_form_is_read_and_not_left_on_the_connection(
    token_crev: CrevServer, upstream: RawUpstream
) -> None:
    form = b"grant_type=refresh_token&refresh_token=r&service=reg&scope=repository:tool:pull"
    data = (
        b"POST /api/token HTTP/1.1\r\nHost: crev.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form)
        + b"GET /v2/after/manifests/1 HTTP/1.1\r\nHost: crev.test\r\nConnection: close\r\n\r\n"
    )
    raw = exchange(port_of(token_crev), data, timeout=3)
    (request,) = realm_requests(upstream)
    assert scopes_asked(request) == ["repository:acme/tool:pull"]
    assert raw.count(b"HTTP/1.1 200 ") == 2, raw
    assert "/v2/acme/after/manifests/1" in upstream.paths()
