"""The strict request-head reader: what it accepts, what it refuses, and with which status."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crev.errors import RegistryError
from crev.request_head import MAX_HEADER_FIELDS, RequestHead, read_request_head


def read(request_line: bytes, header_block: bytes) -> RequestHead:
    return read_request_head(request_line, io.BytesIO(header_block))


def refusal(request_line: bytes, header_block: bytes = b"\r\n") -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        read(request_line, header_block)
    return caught.value


def test_a_request_head_is_read_into_its_parts() -> None:
    head = read(
        b"GET /v2/tool/manifests/1 HTTP/1.1\r\n",
        b"Host: acme.dev\r\nAccept:  a/b \t\r\nAccept: c/d\r\n\r\nbody",
    )
    assert (head.method, head.target, head.version) == ("GET", "/v2/tool/manifests/1", "HTTP/1.1")
    assert head.headers.items == [("Host", "acme.dev"), ("Accept", "a/b"), ("Accept", "c/d")]


def test_only_the_head_is_read_from_the_stream() -> None:
    stream = io.BytesIO(b"Content-Length: 4\r\n\r\nbody")
    read_request_head(b"PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\n", stream)
    assert stream.read() == b"body"


def test_the_message_is_what_http_server_code_expects() -> None:
    message = read(
        b"GET / HTTP/1.1\r\n", b"Host: a\r\nX-Internal: 1\r\nAccept: b\r\n\r\n"
    ).message()
    assert message.get("host") == "a"
    # Vercel's runtime deletes its internal headers this way before the handler runs.
    del message["x-internal"]
    assert message.items() == [("Host", "a"), ("Accept", "b")]


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"HTTP/1.1", b"", True),
        (b"HTTP/1.1", b"Connection: close\r\n", False),
        (b"HTTP/1.1", b"Connection: TE, Close\r\n", False),
        (b"HTTP/1.0", b"", False),
        (b"HTTP/1.0", b"Connection: keep-alive\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(
    version: bytes, connection: bytes, keep_alive: bool
) -> None:
    assert read(b"GET / " + version + b"\r\n", connection + b"\r\n").keep_alive is keep_alive


def test_expect_100_continue_is_honoured_for_http_1_1_only() -> None:
    expect = b"Expect: 100-continue\r\n\r\n"
    assert read(b"PUT / HTTP/1.1\r\n", expect).expects_continue
    assert not read(b"PUT / HTTP/1.0\r\n", expect).expects_continue
    assert not read(b"PUT / HTTP/1.1\r\n", b"\r\n").expects_continue


@pytest.mark.parametrize(
    ("request_line", "status", "words"),
    [
        (b"GET /v2/\r\n", 400, "HTTP/0.9"),
        (b"GET /v2/ HTTP/1.1 extra\r\n", 400, "HTTP/0.9"),
        (b"GET /v2/ HTTP/2.0\r\n", 505, "HTTP/2.0"),
        (b"GET /v2/ HTTP/1.10\r\n", 400, "bad request version"),
        (b"GET /v2/ FTP/1.1\r\n", 400, "bad request version"),
        (b"G(T /v2/ HTTP/1.1\r\n", 400, "bad request method"),
    ],
)
def test_bad_request_lines_are_refused(request_line: bytes, status: int, words: str) -> None:
    error = refusal(request_line)
    assert error.status == status
    assert words in str(error)


@pytest.mark.parametrize(
    ("block", "words"),
    [
        (b"Host: a\r\n folded\r\n\r\n", "folded"),
        (b"Host: a\rX-Evil: 1\r\n\r\n", "control character"),
        (b"Host: a\x00\r\n\r\n", "control character"),
        (b"Host : a\r\n\r\n", "malformed header line"),
        (b"no colon here\r\n\r\n", "malformed header line"),
        (b": empty name\r\n\r\n", "malformed header line"),
        (b"Host: a\r\nHost: b\r\n\r\n", "more than one Host"),
        (b"Content-Length: 1\r\nContent-Length: 1\r\n\r\n", "more than one Content-Length"),
        (b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "more than one"),
        (b"Content-Length: +1\r\n\r\n", "invalid Content-Length"),
        (b"Content-Length: " + b"9" * 17 + b"\r\n\r\n", "invalid Content-Length"),
        (b"Host: a\r\n", "ended before its blank line"),
    ],
)
def test_ambiguous_header_blocks_are_400(block: bytes, words: str) -> None:
    error = refusal(b"GET / HTTP/1.1\r\n", block)
    assert error.status == 400
    assert words in str(error)


def test_an_unknown_transfer_coding_is_501() -> None:
    assert refusal(b"PUT / HTTP/1.1\r\n", b"Transfer-Encoding: gzip\r\n\r\n").status == 501


def test_oversized_header_blocks_are_431() -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADER_FIELDS + 1)) + b"\r\n"
    assert refusal(b"GET / HTTP/1.1\r\n", many).status == 431
    big = b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert refusal(b"GET / HTTP/1.1\r\n", big).status == 431
    assert read(b"GET / HTTP/1.1\r\n", b"X-1: 1\r\n" * MAX_HEADER_FIELDS + b"\r\n")


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1)
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=20))
def test_well_formed_fields_are_read_back_as_sent(fields: list[tuple[str, str]]) -> None:
    fields = [(name, value) for name, value in fields if name.lower() not in _FRAMING]
    block = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields)
    assert read(b"GET / HTTP/1.1\r\n", block + b"\r\n").headers.items == fields


_FRAMING = {"host", "content-length", "transfer-encoding"}
