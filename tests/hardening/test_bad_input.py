"""Bad input on the wire: every refusal is a registry JSON error and the upstream sees nothing.

Requests are written byte for byte over raw sockets, so what crev parses is exactly what a
hostile client sent (no client library resolves `..` or re-encodes escapes first).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.faulty_upstream import (
    UPSTREAM_MARK,
    Connection,
    RawRequest,
    RawUpstream,
    healthy,
    respond,
)
from tests.support.wire import exchange, parse, port_of, raw_error, send

DIGEST = "sha256:" + "a" * 64

# ------------------------------------------------------------------ names and the prefix

ESCAPES = [
    "/v2/../other/manifests/1",
    "/v2/tool/../../other/manifests/1",
    "/v2/acme/../../other/manifests/1",
    "/v2/./tool/manifests/1",
    "/v2/tool/./manifests/1",
    "/v2/%2e%2e/other/manifests/1",
    "/v2/%2E%2E/other/manifests/1",
    "/v2/.%2e/other/manifests/1",
    "/v2/%2e./other/manifests/1",
    "/v2/%252e%252e/other/manifests/1",
    "/v2/acme%2Fother/manifests/1",
    "/v2/acme%2fother/manifests/1",
    "/v2/..%2Fother/manifests/1",
    "/v2/tool%2F..%2F..%2Fother/manifests/1",
    "/v2/%2e%2e%2fother/manifests/1",
    "/v2/tool//x/manifests/1",
    "/v2//tool/manifests/1",
    "/v2//acme/x/manifests/1",
    "/v2/tool/x//manifests/1",
    "/v2/tool\\x/manifests/1",
    "/v2/..\\other/manifests/1",
    "/v2/tool%5Cx/manifests/1",
    "/v2/tool%5cx/manifests/1",
    "/v2/..%5c..%5cother/manifests/1",
    "/v2/tool%00/manifests/1",
    "/v2/tool%0d%0aX-Injected:%201/manifests/1",
    "/v2/Tool/manifests/1",
    "/v2/-tool/manifests/1",
    "/v2/tool-/manifests/1",
    "/v2/to..ol/manifests/1",
    "/v2/to___ol/manifests/1",
    "/v2/127.0.0.1:5000/tool/manifests/1",
    "/v2/tool@evil/manifests/1",
    "/v2/tool;x/manifests/1",
    "/v2/~tool/manifests/1",
]

# Letters and separators that look like ASCII ones (or are invisible).
LOOK_ALIKES = {
    "greek-omicron": "t\u03bfol",
    "cyrillic-a": "\u0430cme/x",
    "fullwidth-a": "\uff41cme/x",
    "division-slash": "acme\u2215x",
    "fraction-slash": "acme\u2044x",
    "fullwidth-solidus": "acme\uff0fx",
    "fullwidth-reverse-solidus": "acme\uff3cx",
    "fullwidth-dots": "\uff0e\uff0e/other",
    "one-dot-leaders": "\u2024\u2024/other",
    "zero-width-space": "tool\u200b",
    "combining-dot": "tool\u0307",
    "dotless-i": "\u0131mage",
}


@pytest.mark.parametrize("target", ESCAPES)
def test_escapes_from_the_prefix_are_refused(crev, upstream: RawUpstream, target: str) -> None:
    raw_error(send(port_of(crev), target), 400, "NAME_INVALID")
    assert upstream.saw_nothing()


@pytest.mark.parametrize("encoded", [False, True], ids=["raw-utf8", "percent-encoded"])
@pytest.mark.parametrize("name", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_unicode_look_alikes_are_refused(
    crev, upstream: RawUpstream, name: str, encoded: bool
) -> None:
    shown = quote(name, safe="/") if encoded else name
    # Raw non-ASCII bytes are no request-target at all (RFC 9112 3.2): the head is refused
    # before any name is read. Percent-encoded, they reach the name grammar and fail it.
    error = raw_error(
        send(port_of(crev), f"/v2/{shown}/manifests/1"),
        400,
        "NAME_INVALID" if encoded else "UNSUPPORTED",
    )
    if not encoded:
        assert "request" in error["message"]
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    ("target", "upstream_target"),
    [
        ("/v2/acme/manifests/1", "/v2/acme/acme/manifests/1"),
        ("/v2/acme/x/manifests/1", "/v2/acme/acme/x/manifests/1"),
        ("/v2/acme/acme/blobs/" + DIGEST, "/v2/acme/acme/acme/blobs/" + DIGEST),
        ("/v2/acme/x/tags/list", "/v2/acme/acme/x/tags/list"),
        ("/v2/acmex/manifests/1", "/v2/acme/acmex/manifests/1"),
        ("/v2/acme-x/manifests/1", "/v2/acme/acme-x/manifests/1"),
        ("/v2/other/manifests/1", "/v2/acme/other/manifests/1"),
        ("/v2/tool/manifests/sha256%3A" + "a" * 64, "/v2/acme/tool/manifests/" + DIGEST),
    ],
)
def test_names_equal_to_or_starting_with_the_prefix_stay_under_it(
    crev, upstream: RawUpstream, target: str, upstream_target: str
) -> None:
    upstream.route = lambda request: (
        _tag_list if "/tags/list" in request.path else healthy(request)
    )
    response = send(port_of(crev), target)
    assert response.status == 200
    assert response.header(UPSTREAM_MARK[0]) == UPSTREAM_MARK[1]
    assert upstream.paths() == [upstream_target]


def _tag_list(request: RawRequest, conn: Connection) -> None:
    """A tag list naming the repository as the upstream calls it."""
    name = request.path.removeprefix("/v2/").removesuffix("/tags/list")
    body = f'{{"name":"{name}","tags":["1"]}}'.encode()
    respond(200, body, [UPSTREAM_MARK])(request, conn)


def test_longest_name_that_fits_under_the_prefix_is_forwarded(crev, upstream: RawUpstream) -> None:
    name = "a" * (255 - len("acme/"))
    response = send(port_of(crev), f"/v2/{name}/manifests/1")
    assert response.status == 200
    assert upstream.paths() == [f"/v2/acme/{name}/manifests/1"]


@pytest.mark.parametrize(
    "name",
    [
        "a" * (256 - len("acme/")),  # fine on its own, too long once under the prefix
        "a" * 256,
        "/".join(["ab"] * 90),
        "a" * 1500,
    ],
    ids=["256-with-prefix", "256-component", "many-components", "1500"],
)
def test_over_long_names_are_refused(crev, upstream: RawUpstream, name: str) -> None:
    raw_error(send(port_of(crev), f"/v2/{name}/manifests/1"), 400, "NAME_INVALID")
    assert upstream.saw_nothing()


def test_over_long_path_is_414(crev, upstream: RawUpstream) -> None:
    target = "/v2/" + "a/" * 1100 + "manifests/1"
    raw_error(send(port_of(crev), target), 414)
    assert upstream.saw_nothing()


def test_over_long_request_line_is_414(crev, upstream: RawUpstream) -> None:
    target = "/v2/tool/tags/list?n=" + "9" * 70_000
    raw_error(send(port_of(crev), target), 414)
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ tags and digests


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/v2/tool/manifests/-1", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/.hidden", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/" + "a" * 129, 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/%2e%2e", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/..", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/1%2F..%2F..%2Fother", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/1%00", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/1%0d%0aX-Injected:%201", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/t%C3%A4g", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/sha256:abc", 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/sha256:" + "A" * 64, 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/manifests/sha256:" + "g" * 64, 404, "MANIFEST_UNKNOWN"),
        ("/v2/tool/blobs/latest", 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/sha256:" + "a" * 63, 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/sha256:" + "a" * 65, 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/sha512:" + "a" * 64, 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/" + DIGEST + "%2F..", 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/" + DIGEST + "%0d%0a", 400, "DIGEST_INVALID"),
        ("/v2/tool/blobs/:" + "a" * 64, 400, "DIGEST_INVALID"),
        ("/v2/tool/referrers/latest", 400, "DIGEST_INVALID"),
    ],
)
def test_bad_tags_and_digests_are_refused(
    crev, upstream: RawUpstream, target: str, status: int, code: str
) -> None:
    # A manifest reference that is no tag or digest names no manifest (404, as the registry
    # answers); a malformed blob digest is a 400.
    raw_error(send(port_of(crev), target), status, code)
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ routes and methods


@pytest.mark.parametrize(
    "target",
    [
        "/v2/_catalog",
        "/v2/_catalog?n=100",
        "/v2/tool",
        "/v2/tool/",
        "/v2/tool/manifests",
        "/v2/tool/unknown/x",
        "/v2/tool/tags/list/x",
        "/v2/tool/manifests/1/extra",
        "/v3/",
        "/v2x/",
        "/api/tokens",
        "/api/../v2/",
        "*",
    ],
)
def test_unknown_routes_are_404_unsupported(crev, upstream: RawUpstream, target: str) -> None:
    raw_error(send(port_of(crev), target), 404, "UNSUPPORTED")
    assert upstream.saw_nothing()


READ_ENDPOINTS = [
    "/v2/",
    "/v2/tool/manifests/1",
    f"/v2/tool/manifests/{DIGEST}",
    f"/v2/tool/blobs/{DIGEST}",
    "/v2/tool/tags/list",
    f"/v2/tool/referrers/{DIGEST}",
]


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "X"])
@pytest.mark.parametrize("target", READ_ENDPOINTS)
def test_writes_are_405_with_allow(crev, upstream: RawUpstream, method: str, target: str) -> None:
    # start_crev clears every CREV_* variable: this is the default, read-only mode.
    response = send(port_of(crev), target, method=method, body=b"{}")
    raw_error(response, 405, "UNSUPPORTED")
    assert response.header("allow") == "GET, HEAD"
    assert upstream.saw_nothing()


UPLOAD_ENDPOINTS = ["/v2/tool/blobs/uploads/", "/v2/tool/blobs/uploads/3f2a-uuid"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("target", UPLOAD_ENDPOINTS)
def test_uploads_are_405_in_read_only_mode(
    crev, upstream: RawUpstream, method: str, target: str
) -> None:
    raw_error(send(port_of(crev), target, method=method, body=b"x"), 405, "UNSUPPORTED")
    assert upstream.saw_nothing()


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT"])
@pytest.mark.parametrize("target", UPLOAD_ENDPOINTS)
def test_upload_endpoint_allow_names_only_what_is_served(
    crev, upstream: RawUpstream, method: str, target: str
) -> None:
    port = port_of(crev)
    response = send(port, target, method=method)
    assert response.status == 405
    allow = response.header("allow")
    assert allow is not None, "a 405 must carry Allow (RFC 9110 section 15.5.6)"
    for allowed in filter(None, (part.strip() for part in allow.split(","))):
        assert send(port, target, method=allowed).status != 405, f"Allow names {allowed}"
    assert upstream.saw_nothing()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_token_endpoint_refuses_other_methods(crev, upstream: RawUpstream, method: str) -> None:
    response = send(port_of(crev), "/api/token", method=method, body=b"x")
    raw_error(response, 405, "UNSUPPORTED")
    assert response.header("allow") == "GET, POST"
    assert upstream.saw_nothing()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_refused_request_body_is_never_read_as_a_next_request(
    crev, upstream: RawUpstream, chunked: bool
) -> None:
    smuggled = b"GET /v2/smuggled/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n\r\n"
    if chunked:
        framing = b"Transfer-Encoding: chunked\r\n"
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    else:
        framing = b"Content-Length: %d\r\n" % len(smuggled)
        body = smuggled
    data = (
        b"PUT /v2/tool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n"
        + framing
        + b"\r\n"
        + body
        + b"GET /v2/after/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n\r\n"
    )
    raw = exchange(port_of(crev), data, timeout=3)
    raw_error(parse(raw), 405, "UNSUPPORTED")
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert upstream.saw_nothing()


def test_content_length_with_chunked_is_refused(crev, upstream: RawUpstream) -> None:
    data = (
        b"GET /v2/tool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    )
    raw_error(parse(exchange(port_of(crev), data)), 400)
    assert upstream.saw_nothing()


SMUGGLED = b"GET /v2/smuggled/manifests/1 HTTP/1.1\r\nHost: crev.test\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(SMUGGLED),
        b"Content-Length: %d\r\nContent-Length: 0\r\n" % len(SMUGGLED),
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    ],
    ids=["cl-0-then-n", "cl-n-then-0", "te-twice"],
)
def test_conflicting_framing_headers_are_400(crev, upstream: RawUpstream, framing: bytes) -> None:
    data = b"GET /v2/tool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n" + framing + b"\r\n"
    raw = exchange(port_of(crev), data + SMUGGLED, timeout=1.5)
    assert upstream.saw_nothing(), "a request with ambiguous framing was forwarded"
    raw_error(parse(raw), 400)
    assert raw.count(b"HTTP/1.1 ") == 1, raw


def _with_content_length(value: str) -> bytes:
    return (
        f"GET /v2/tool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\nContent-Length: {value}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("value", ["-1", "1x", "0x10", "1,1", " "])
def test_invalid_content_length_is_refused(crev, upstream: RawUpstream, value: str) -> None:
    raw_error(parse(exchange(port_of(crev), _with_content_length(value), timeout=3)), 400)
    assert upstream.saw_nothing()


def test_absurd_content_length_is_refused(crev, upstream: RawUpstream) -> None:
    raw = exchange(port_of(crev), _with_content_length("9" * 23), timeout=3)
    raw_error(parse(raw), (400, 413))
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ header and URL sizes


def test_a_header_line_over_64_kib_is_431(crev, upstream: RawUpstream) -> None:
    response = send(port_of(crev), "/v2/", headers=[("Accept", "a" * 70_000)])
    raw_error(response, 431)
    assert upstream.saw_nothing()


def test_over_a_hundred_header_fields_is_431(crev, upstream: RawUpstream) -> None:
    response = send(port_of(crev), "/v2/", headers=[("X-Filler", str(i)) for i in range(101)])
    raw_error(response, 431)
    assert upstream.saw_nothing()


def test_a_header_block_of_a_mebibyte_is_431(crev, upstream: RawUpstream) -> None:
    headers = [("Accept", "a" * 64_000) for _ in range(16)]
    response = send(port_of(crev), "/v2/tool/manifests/1", headers=headers)
    raw_error(response, 431)
    assert upstream.saw_nothing()


# ------------------------------------------------------------------ CR/LF and control characters


def test_percent_encoded_crlf_in_a_tag_list_query_stays_encoded(
    crev, upstream: RawUpstream
) -> None:
    upstream.route = lambda request: _tag_list
    target = "/v2/tool/tags/list?n=1%0d%0aX-Injected:%201&last=a%0a"
    response = send(port_of(crev), target)
    assert response.status == 200
    (request,) = upstream.requests
    assert request.target == "/v2/acme/tool/tags/list?n=1%0d%0aX-Injected:%201&last=a%0a"
    assert request.header("X-Injected") is None


def test_raw_crlf_in_the_path_is_refused(crev, upstream: RawUpstream) -> None:
    data = (
        b"GET /v2/tool/manifests/1\r\nX-Injected: 1 HTTP/1.1\r\nHost: crev.test\r\n"
        b"Connection: close\r\n\r\n"
    )
    raw_error(parse(exchange(port_of(crev), data, timeout=3)), 400)
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET /v2/ HTTP/2.0", 505),
        (b"GET /v2/ HTTP/1.x", 400),
        (b"GET /v2/ FOO/1.1", 400),
        (b"GET /v2/ HTTP/1.1 extra", 400),
        (b"GET", 400),
        (b"POST /v2/", 400),
    ],
)
def test_bad_protocol_versions_get_a_status_line(
    crev, upstream: RawUpstream, request_line: bytes, status: int
) -> None:
    data = request_line + b"\r\nHost: crev.test\r\nConnection: close\r\n\r\n"
    raw_error(parse(exchange(port_of(crev), data, timeout=3)), status)
    assert upstream.saw_nothing()


def test_an_empty_line_before_the_request_line_is_ignored(crev, upstream: RawUpstream) -> None:
    data = b"\r\nGET /v2/ HTTP/1.1\r\nHost: crev.test\r\nConnection: close\r\n\r\n"
    response = parse(exchange(port_of(crev), data, timeout=3))
    assert response.status == 200
    assert upstream.paths() == ["/v2/"]


def test_two_empty_lines_before_a_request_line_are_400(crev, upstream: RawUpstream) -> None:
    data = b"\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: crev.test\r\nConnection: close\r\n\r\n"
    raw_error(parse(exchange(port_of(crev), data, timeout=3)), 400)
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    "request_line", [b"GET /v2/ a b HTTP/1.1", b"GET /v2/tool manifests/1 HTTP/1.1"]
)
def test_request_lines_with_too_many_words_are_400(
    crev, upstream: RawUpstream, request_line: bytes
) -> None:
    data = request_line + b"\r\nHost: crev.test\r\nConnection: close\r\n\r\n"
    raw_error(parse(exchange(port_of(crev), data, timeout=3)), 400)
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer SECRET-VALUE\r\n folded-continuation",
        b"Accept: application/json\r\n\tfolded",
        b"Authorization: Bearer SECRET-VALUE\x00tail",
    ],
    ids=["obs-fold-authorization", "obs-fold-accept", "nul"],
)
def test_control_characters_in_header_values_are_400(
    crev, upstream: RawUpstream, header: bytes
) -> None:
    data = (
        b"GET /v2/tool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n"
        + header
        + b"\r\nConnection: close\r\n\r\n"
    )
    response = parse(exchange(port_of(crev), data))
    raw_error(response, 400)
    assert b"SECRET-VALUE" not in response.body
    assert upstream.saw_nothing()


def test_bare_cr_in_a_header_value_is_400(crev, upstream: RawUpstream) -> None:
    upstream.route = lambda request: _challenge
    data = (
        b"GET /v2/ HTTP/1.1\r\nHost: crev.test\r\n"
        b"User-Agent: docker\rX-Forwarded-Host: evil.example\r\nConnection: close\r\n\r\n"
    )
    response = parse(exchange(port_of(crev), data))
    assert "evil.example" not in (response.header("www-authenticate") or "")
    raw_error(response, 400)
    assert upstream.saw_nothing()


def _challenge(request: RawRequest, conn: Connection) -> None:
    challenge = 'Bearer realm="http://auth.invalid/token",service="reg"'
    respond(401, b"{}", [("WWW-Authenticate", challenge)])(request, conn)


# ------------------------------------------------------------------ Host


@pytest.mark.parametrize(
    "host",
    ["", "a/b", "a b", "evil@crev.test", "crev.test:99999", "crev.test:x", "[::1", "a\\b", "a?b"],
)
def test_invalid_host_is_400(crev, upstream: RawUpstream, host: str) -> None:
    raw_error(send(port_of(crev), "/v2/tool/manifests/1", host=host), 400)
    assert upstream.saw_nothing()


def test_missing_host_is_400(crev, upstream: RawUpstream) -> None:
    raw_error(send(port_of(crev), "/v2/tool/manifests/1", host=None), 400)
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Forwarded-Host", "a/b"),
        ("X-Forwarded-Host", "evil@x"),
        ("X-Forwarded-Host", "x:notaport"),
        ("X-Forwarded-Proto", "javascript"),
        ("X-Forwarded-Proto", "ftp"),
    ],
)
def test_invalid_forwarded_origin_is_400(
    crev, upstream: RawUpstream, name: str, value: str
) -> None:
    raw_error(send(port_of(crev), "/v2/", headers=[(name, value)]), 400)
    assert upstream.saw_nothing()


def test_duplicate_host_is_400(crev, upstream: RawUpstream) -> None:
    response = send(port_of(crev), "/v2/tool/manifests/1", headers=[("Host", "other.example")])
    raw_error(response, 400)
    assert upstream.saw_nothing()
