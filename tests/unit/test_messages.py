"""Requests, responses and headers as crev's services see them (crev/messages.py): a header map
that keeps order and repeats, a request body refused past its limit before anything is read,
answers framed with their own length, and the vanity origin a request was addressed to."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from crev.endpoints import Endpoint, Kind, check_method
from crev.errors import RegistryError
from crev.messages import Headers, Request, Response, has_control_characters, request_origin
from crev.names import RepositoryName
from crev.urls import Origin
from tests.support.refusals import refused

VANITY = Origin("https", "acme.dev")

# --- Headers ----------------------------------------------------------------------------------


def test_headers_are_read_without_regard_to_case() -> None:
    headers = Headers([("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer x")])
    assert headers.get("content-type") == "application/json"
    assert headers.get("www-authenticate") == "Bearer x"
    assert "CONTENT-TYPE" in headers
    assert headers.get("Location") is None
    assert headers.get("Location", "/") == "/"
    assert "Location" not in headers


def test_headers_keep_repeated_fields_in_order() -> None:
    headers = Headers(
        [
            ("Accept", "application/vnd.oci.image.index.v1+json"),
            ("User-Agent", "docker"),
            ("accept", "application/vnd.oci.image.manifest.v1+json"),
        ]
    )
    assert headers.get("Accept") == "application/vnd.oci.image.index.v1+json"
    assert headers.get_all("ACCEPT") == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
    assert headers.get_all("Link") == []
    assert list(headers) == headers.items


def test_set_replaces_every_field_of_that_name() -> None:
    headers = Headers([("Link", "<a>"), ("Date", "d"), ("link", "<b>")])
    headers.set("LINK", "<c>")
    assert headers.items == [("Date", "d"), ("LINK", "<c>")]


def test_remove_takes_out_every_field_of_that_name() -> None:
    headers = Headers([("Authorization", "Basic a"), ("Accept", "*/*"), ("authorization", "b")])
    headers.remove("AUTHORIZATION")
    assert headers.items == [("Accept", "*/*")]
    headers.remove("Authorization")
    assert headers.items == [("Accept", "*/*")]


def test_only_a_name_can_be_in_headers() -> None:
    headers = Headers([("1", "one")])
    assert 1 not in headers
    assert None not in headers


def test_an_empty_value_is_still_present() -> None:
    headers = Headers([("Authorization", "")])
    assert "Authorization" in headers
    assert headers.get("authorization") == ""


# --- has_control_characters -------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", [b"", b"Bearer abc", b"a\tb", b"caf\xc3\xa9", b"\x80\xff", b' ~!"#']
)
def test_a_field_value_may_hold_tab_visible_ascii_space_and_obs_text(field: bytes) -> None:
    assert has_control_characters(field) is False


@pytest.mark.parametrize("field", [b"a\x00b", b"a\rb", b"a\nb", b"\x1b[31m", b"a\x7f", b"\x0b"])
def test_other_control_characters_are_found(field: bytes) -> None:
    assert has_control_characters(field) is True


# --- Request bodies ---------------------------------------------------------------------------


class Body:
    """A client body, remembering whether anything read it."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.read = False

    def __call__(self) -> Iterator[bytes]:
        self.read = True
        return iter(self.chunks)


def upload(body: Body, content_length: int | None, chunked: bool = False) -> Request:
    return Request(
        "PATCH",
        "/v2/tool/blobs/uploads/u",
        "",
        Headers(),
        VANITY,
        body=body,
        content_length=content_length,
        chunked=chunked,
    )


def test_a_request_has_a_body_when_it_announces_one() -> None:
    assert upload(Body(b"x"), 1).has_body is True
    assert upload(Body(), None, chunked=True).has_body is True
    assert upload(Body(), 0).has_body is False
    assert upload(Body(), None).has_body is False


def test_a_request_without_a_body_streams_none() -> None:
    body = Body(b"never sent")
    request = upload(body, 0)
    assert request.stream_body(10) is None
    assert request.read_body(10) == b""
    assert body.read is False
    assert Request("GET", "/v2/", "", Headers(), VANITY).read_body(10) == b""


def test_a_body_within_the_limit_streams_as_sent() -> None:
    request = upload(Body(b"abc", b"def"), 6)
    chunks = request.stream_body(6)
    assert chunks is not None
    assert list(chunks) == [b"abc", b"def"]
    assert upload(Body(b"abc", b"def"), 6).read_body(6) == b"abcdef"


def test_no_limit_streams_any_body() -> None:
    chunks = upload(Body(b"a" * 100), None, chunked=True).stream_body(None)
    assert chunks is not None
    assert b"".join(chunks) == b"a" * 100


def test_a_body_announced_over_the_limit_is_refused_before_it_is_read() -> None:
    body = Body(b"x" * 11)
    with refused() as refusal:
        upload(body, 11).stream_body(10)
    assert refusal.status == 413
    assert refusal.code == "SIZE_INVALID"
    assert refusal.message.startswith("request body is over 10 bytes")
    assert body.read is False


def test_a_chunked_body_is_refused_once_it_grows_past_the_limit() -> None:
    chunks = upload(Body(b"12345", b"67890", b"!"), None, chunked=True).stream_body(10)
    assert chunks is not None
    assert next(chunks) == b"12345"
    assert next(chunks) == b"67890"
    with refused() as refusal:
        next(chunks)
    assert (refusal.status, refusal.code) == (413, "SIZE_INVALID")


def test_read_body_refuses_a_small_body_past_its_limit() -> None:
    with refused() as refusal:
        upload(Body(b"x" * 65), None, chunked=True).read_body(64)
    assert refusal.status == 413


# --- Responses --------------------------------------------------------------------------------


def test_an_error_answer_is_registry_json_with_its_length_and_headers() -> None:
    with pytest.raises(RegistryError) as caught:
        check_method(Endpoint(Kind.UPLOAD_START, RepositoryName("tool")), "POST", push=False)
    response = Response.from_error(caught.value)
    body = b"".join(response.body)
    assert response.status == 405
    assert json.loads(body) == {
        "errors": [
            {"code": "UNSUPPORTED", "message": "POST is not served: this registry is read-only"}
        ]
    }
    assert response.headers.get("Content-Type") == "application/json"
    assert response.headers.get("Content-Length") == str(len(body))
    # An empty Allow is still sent: a 405 must carry one.
    assert response.headers.get_all("Allow") == [""]
    assert response.upstream_status is None


def test_a_response_from_bytes_announces_their_length() -> None:
    headers = Headers([("Content-Length", "999"), ("Content-Type", "application/json")])
    response = Response.from_bytes(200, headers, b'{"a":1}', upstream_status=200)
    assert response.headers.get_all("content-length") == ["7"]
    assert b"".join(response.body) == b'{"a":1}'
    assert response.upstream_status == 200


def test_a_response_closes_what_it_was_given() -> None:
    closed: list[bool] = []
    Response(200, close=lambda: closed.append(True)).close()
    assert closed == [True]
    plain = Response(204)
    plain.close()
    assert plain.headers.items == []
    assert list(plain.body) == []


# --- request_origin ---------------------------------------------------------------------------


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
