"""Which headers cross crev, each way (crev/rewrite/header_filters.py)."""

from __future__ import annotations

from crev.messages import Headers
from crev.rewrite.header_filters import client_response_headers, upstream_request_headers

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
