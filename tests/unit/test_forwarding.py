"""Headers crossing crev (crev/header_filters.py) and the vanity origin (crev/realm.py)."""

from __future__ import annotations

import pytest

from crev import token_endpoint
from crev.config import Settings
from crev.header_filters import client_response_headers, upstream_request_headers
from crev.messages import Headers, Request, request_origin
from crev.names import Namespace
from crev.routing import Route, RouteTable
from crev.urls import URL, Origin
from tests.support.refusals import refused

# --- upstream_request_headers -----------------------------------------------------------------


def test_request_allow_list() -> None:
    client = Headers(
        [
            ("Host", "vanity.example"),
            ("User-Agent", "docker/27.0"),
            ("Accept", "application/vnd.oci.image.index.v1+json"),
            ("Cookie", "session=secret"),
            ("Authorization", "Bearer tok"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Host", "vanity.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Real-IP", "203.0.113.7"),
            ("Forwarded", "for=203.0.113.7"),
            ("Via", "1.1 vercel"),
            ("Accept", "application/vnd.docker.distribution.manifest.v2+json"),
            ("Range", "bytes=0-99"),
            ("If-None-Match", '"etag"'),
            ("If-Match", '"m"'),
            ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("If-Unmodified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("If-Range", '"r"'),
            ("Content-Type", "application/json"),
            ("Content-Range", "0-9"),
            ("Docker-Content-Digest", "sha256:abc"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "10"),
            ("Proxy-Authorization", "Basic x"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Accept", "*/*"),
        ]
    )
    assert upstream_request_headers(client).items == [
        ("User-Agent", "docker/27.0"),
        ("Accept", "application/vnd.oci.image.index.v1+json"),
        ("Authorization", "Bearer tok"),
        ("Accept", "application/vnd.docker.distribution.manifest.v2+json"),
        ("Range", "bytes=0-99"),
        ("If-None-Match", '"etag"'),
        ("If-Match", '"m"'),
        ("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("If-Unmodified-Since", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("If-Range", '"r"'),
        ("Content-Type", "application/json"),
        ("Content-Range", "0-9"),
        ("Docker-Content-Digest", "sha256:abc"),
        ("Accept", "*/*"),
    ]


def test_request_header_names_match_case_insensitively() -> None:
    client = Headers([("accept", "a"), ("ACCEPT", "b"), ("cOOkie", "c"), ("HOST", "h")])
    assert upstream_request_headers(client).items == [
        ("accept", "a"),
        ("ACCEPT", "b"),
    ]


def test_repeated_accept_values_kept_in_order() -> None:
    values = [f"application/type-{i}" for i in range(10)]
    forwarded = upstream_request_headers(Headers([("Accept", value) for value in values]))
    assert forwarded.get_all("accept") == values


def test_authorization_dropped_without_credentials() -> None:
    client = Headers([("Authorization", "Basic dXNlcjpwYXNz"), ("authorization", "Bearer x")])
    assert upstream_request_headers(client, credentials=False).items == []
    assert upstream_request_headers(client, credentials=True).get_all("authorization") == [
        "Basic dXNlcjpwYXNz",
        "Bearer x",
    ]


def test_accept_encoding_kept_when_present() -> None:
    forwarded = upstream_request_headers(Headers([("Accept-Encoding", "gzip")]))
    assert forwarded.items == [("Accept-Encoding", "gzip")]
    empty = upstream_request_headers(Headers([("accept-encoding", "")]))
    assert empty.items == [("accept-encoding", "")]


def test_empty_request() -> None:
    # `Accept-Encoding: identity` is added where the request is sent (test_upstream.py).
    assert upstream_request_headers(Headers()).items == []


def test_request_headers_do_not_alias_the_client_headers() -> None:
    client = Headers([("Accept", "a")])
    forwarded = upstream_request_headers(client)
    forwarded.set("Accept", "b")
    assert client.items == [("Accept", "a")]


# --- client_response_headers ------------------------------------------------------------------


def test_response_drops_hop_by_hop_and_cookies() -> None:
    upstream = Headers(
        [
            ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("Proxy-Authorization", "Basic x"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "Expires"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Set-Cookie", "a=1; Domain=ghcr.io"),
            ("set-cookie", "b=2"),
            ("Server", "nginx"),
            ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("Docker-Content-Digest", "sha256:abc"),
            ("Content-Length", "123"),
            ("ETag", '"sha256:abc"'),
            ("WWW-Authenticate", 'Bearer realm="x"'),
            ("Location", "https://cdn.example/x"),
            ("RateLimit-Limit", "100;w=21600"),
            ("RateLimit-Remaining", "99;w=21600"),
            ("Docker-RateLimit-Source", "203.0.113.7"),
            ("Docker-Distribution-API-Version", "registry/2.0"),
            ("Content-Encoding", "gzip"),
        ]
    )
    assert client_response_headers(upstream).items == [
        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ("Docker-Content-Digest", "sha256:abc"),
        ("Content-Length", "123"),
        ("ETag", '"sha256:abc"'),
        ("WWW-Authenticate", 'Bearer realm="x"'),
        ("Location", "https://cdn.example/x"),
        ("RateLimit-Limit", "100;w=21600"),
        ("RateLimit-Remaining", "99;w=21600"),
        ("Docker-RateLimit-Source", "203.0.113.7"),
        ("Docker-Distribution-API-Version", "registry/2.0"),
        ("Content-Encoding", "gzip"),
    ]


def test_response_drops_headers_named_in_connection() -> None:
    upstream = Headers(
        [
            ("Connection", "close, X-Private ,x-other"),
            ("connection", "X-Third"),
            ("X-Private", "1"),
            ("x-PRIVATE", "2"),
            ("X-Other", "3"),
            ("X-Third", "4"),
            ("X-Kept", "5"),
            ("Close", "6"),
        ]
    )
    assert client_response_headers(upstream).items == [("X-Kept", "5")]


def test_empty_connection_tokens_drop_nothing_else() -> None:
    upstream = Headers([("Connection", " , ,"), ("X-Kept", "1")])
    assert client_response_headers(upstream).items == [("X-Kept", "1")]


def test_repeated_link_and_authenticate_kept_in_order() -> None:
    upstream = Headers(
        [
            ("Link", '</v2/a/tags/list?last=1>; rel="next"'),
            ("WWW-Authenticate", 'Bearer realm="x"'),
            ("Link", '</b>; rel="prev"'),
            ("WWW-Authenticate", 'Basic realm="y"'),
        ]
    )
    assert client_response_headers(upstream).items == upstream.items


# --- messages.request_origin ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "default", "origin"),
    [
        ([("Host", "vanity.example")], "http", "http://vanity.example"),
        ([("Host", "vanity.example")], "https", "https://vanity.example"),
        ([("Host", "vanity.example:8080")], "http", "http://vanity.example:8080"),
        ([("Host", "127.0.0.1:8080")], "http", "http://127.0.0.1:8080"),
        ([("Host", "[::1]:8080")], "http", "http://[::1]:8080"),
        ([("Host", "Vanity.Example")], "http", "http://Vanity.Example"),
        ([("Host", " vanity.example ")], "http", "http://vanity.example"),
        (
            [("Host", "internal:3000"), ("X-Forwarded-Host", "vanity.example")],
            "http",
            "http://vanity.example",
        ),
        (
            [("Host", "internal"), ("X-Forwarded-Proto", "https")],
            "http",
            "https://internal",
        ),
        (
            [("X-Forwarded-Proto", "HTTPS"), ("X-Forwarded-Host", "v.example"), ("Host", "i")],
            "http",
            "https://v.example",
        ),
        # Only the first of a comma-separated (multi-proxy) value counts.
        (
            [("X-Forwarded-Proto", "https, http"), ("X-Forwarded-Host", "a.example, b.example")],
            "http",
            "https://a.example",
        ),
        # An empty forwarded value falls back.
        ([("X-Forwarded-Host", ""), ("Host", "h.example")], "https", "https://h.example"),
        ([("X-Forwarded-Proto", ""), ("Host", "h.example")], "https", "https://h.example"),
        # The first of repeated headers counts.
        ([("Host", "a.example"), ("Host", "b.example")], "http", "http://a.example"),
    ],
)
def test_request_origin(headers: list[tuple[str, str]], default: str, origin: str) -> None:
    assert str(request_origin(Headers(headers), default)) == origin


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "invalid or missing Host header ''"),
        ([("Host", "")], "invalid or missing Host header ''"),
        ([("Host", "evil.example/path")], "invalid or missing Host header 'evil.example/path'"),
        ([("Host", "user@vanity.example")], "invalid or missing Host header 'user@vanity.example'"),
        ([("Host", "a b")], "invalid or missing Host header 'a b'"),
        ([("Host", "a:abc")], "invalid or missing Host header 'a:abc'"),
        ([("Host", "a:99999")], "invalid or missing Host header 'a:99999'"),
        ([("Host", "a?b")], "invalid or missing Host header 'a?b'"),
        ([("Host", "a#b")], "invalid or missing Host header 'a#b'"),
        ([("Host", "a\\b")], "invalid or missing Host header 'a\\\\b'"),
        ([("Host", "a\tb")], "invalid or missing Host header 'a\\tb'"),
        ([("Host", "[::1")], "invalid or missing Host header '[::1'"),
        ([("Host", "::1")], "invalid or missing Host header '::1'"),
        (
            [("Host", "ok.example"), ("X-Forwarded-Host", "evil.example/x")],
            "invalid or missing Host header 'evil.example/x'",
        ),
        ([("Host", "h"), ("X-Forwarded-Proto", "ftp")], "unsupported forwarded scheme 'ftp'"),
        (
            [("Host", "h"), ("X-Forwarded-Proto", "javascript")],
            "unsupported forwarded scheme 'javascript'",
        ),
    ],
)
def test_request_origin_refuses(headers: list[tuple[str, str]], message: str) -> None:
    with refused() as refusal:
        request_origin(Headers(headers), "https")
    assert refusal.status == 400
    assert refusal.code == "UNSUPPORTED"
    assert refusal.message == message


def test_request_origin_refuses_a_bad_default_scheme() -> None:
    with refused() as refusal:
        request_origin(Headers([("Host", "h")]), "ftp")
    assert refusal.status == 400


@pytest.mark.parametrize("host", ["a\x00b", "vanity.example\x7f", "a\x1bb", "a\x0bb"])
def test_request_origin_refuses_control_characters(host: str) -> None:
    # The origin becomes the realm of every rewritten challenge: a Host (or X-Forwarded-Host)
    # with control characters is the client's bad request, a 400, before it can make a header
    # crev could not send (which would read as a 502 from the upstream).
    with refused() as refusal:
        request_origin(Headers([("Host", host)]), "https")
    assert refusal.status == 400


# --- token_endpoint.token_url -----------------------------------------------------------------

GHCR_ROUTE = Route("", Origin("https", "ghcr.io"), Namespace("acme"))
TOOLS_ROUTE = Route("tools/", Origin("https", "ghcr.io"), Namespace("acme/tools"))


def make_request(origin: str | Origin) -> Request:
    if isinstance(origin, str):
        origin = URL.parse(origin).origin
    return Request("GET", "/v2/", "", Headers(), origin)


def settings_for(token_url: str, *routes: Route) -> Settings:
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
    settings = settings_for(token_url)
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
    settings = settings_for(token_url, GHCR_ROUTE, TOOLS_ROUTE)
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
