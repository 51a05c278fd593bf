"""The client's side of a request through h11: what crev reads of a head and a body, what it
refuses and with which status, and how its answers are framed."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crev.errors import RegistryError
from crev.wire.client_connection import (
    MAX_HEADER_FIELDS,
    ClientConnection,
    RequestHead,
    is_tls_handshake,
)


def connection(data: bytes) -> tuple[ClientConnection, io.BytesIO]:
    written = io.BytesIO()
    return ClientConnection(io.BufferedReader(io.BytesIO(data)), written), written


def read(request_line: bytes, rest: bytes) -> RequestHead:
    return connection(rest)[0].read_head(request_line)


def refusal(request_line: bytes, header_block: bytes = b"Host: a\r\n\r\n") -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        read(request_line, header_block)
    return caught.value


def test_a_request_head_is_read_into_its_parts() -> None:
    head = read(
        b"GET /v2/tool/manifests/1 HTTP/1.1\r\n",
        b"Host: acme.dev\r\nAccept:  a/b \t\r\nAccept: c/d\r\n\r\n",
    )
    assert (head.method, head.target, head.version) == ("GET", "/v2/tool/manifests/1", "HTTP/1.1")
    assert head.headers.items == [("Host", "acme.dev"), ("Accept", "a/b"), ("Accept", "c/d")]
    assert (head.content_length, head.chunked) == (None, False)


def test_only_the_head_is_read_until_the_body_is_asked_for() -> None:
    stream = io.BufferedReader(io.BytesIO(b"Host: a\r\nContent-Length: 4\r\n\r\nbodyNEXT"))
    client = ClientConnection(stream, io.BytesIO())
    head = client.read_head(b"PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\n")
    assert head.content_length == 4
    assert not client.request_complete
    assert b"".join(client.body()) == b"body"
    assert client.request_complete
    # A length-delimited body is read exactly: the next request stays on the stream.
    assert stream.read() == b"NEXT"


def test_a_chunked_body_is_dechunked_and_what_follows_it_is_kept() -> None:
    client, _ = connection(
        b"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nGET /"
    )
    assert client.read_head(b"PUT / HTTP/1.1\r\n").chunked
    assert b"".join(client.body()) == b"abcde"
    assert client.read_past_the_request() == b"GET /"


def test_the_message_is_what_http_server_code_expects() -> None:
    message = read(
        b"GET / HTTP/1.1\r\n", b"Host: a\r\nX-Internal: 1\r\nAccept: b\r\n\r\n"
    ).message()
    assert message.get("host") == "a"
    # Vercel's runtime deletes its internal headers this way before the handler runs.
    del message["x-internal"]
    assert message.items() == [("Host", "a"), ("Accept", "b")]


def test_100_continue_is_sent_when_the_body_is_first_read_and_not_before() -> None:
    client, written = connection(b"Host: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
    client.read_head(b"PUT / HTTP/1.1\r\n")
    assert written.getvalue() == b""
    assert b"".join(client.body()) == b"hi"
    assert written.getvalue() == b"HTTP/1.1 100 \r\n\r\n"


@pytest.mark.parametrize(
    ("version", "connection_header", "keeps_alive"),
    [
        (b"HTTP/1.1", b"", True),
        (b"HTTP/1.1", b"Connection: close\r\n", False),
        (b"HTTP/1.1", b"Connection: TE, Close\r\n", False),
        (b"HTTP/1.0", b"", False),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(
    version: bytes, connection_header: bytes, keeps_alive: bool
) -> None:
    client, written = connection(b"Host: a\r\n" + connection_header + b"\r\n")
    client.read_head(b"GET / " + version + b"\r\n")
    client.respond(200, [("Content-Length", "2")], b"{}")
    assert client.must_close is not keeps_alive
    assert written.getvalue().endswith(b"\r\n\r\n{}")


def test_an_answer_of_unknown_length_is_chunked_for_http_1_1_and_closed_for_http_1_0() -> None:
    for version, framed in [(b"HTTP/1.1", b"2\r\n{}\r\n0\r\n\r\n"), (b"HTTP/1.0", b"\r\n\r\n{}")]:
        client, written = connection(b"Host: a\r\n\r\n")
        client.read_head(b"GET / " + version + b"\r\n")
        client.start_response(200, [("Content-Type", "application/json")])
        client.send_data(b"{}")
        client.end_response()
        assert written.getvalue().endswith(framed), version
        assert (b"transfer-encoding: chunked" in written.getvalue().lower()) is (
            version == b"HTTP/1.1"
        )


def test_no_body_goes_out_for_head_204_and_304() -> None:
    client, written = connection(b"Host: a\r\n\r\n")
    client.read_head(b"HEAD / HTTP/1.1\r\n")
    client.respond(404, [("Content-Length", "2")], b"{}")
    assert written.getvalue().endswith(b"Content-Length: 2\r\n\r\n")
    for status in (204, 304):
        client, written = connection(b"Host: a\r\n\r\n")
        client.read_head(b"GET / HTTP/1.1\r\n")
        client.respond(status, [], b"ignored")
        assert written.getvalue().endswith(b"\r\n\r\n")
        assert not client.must_close


def test_a_tls_handshake_is_refused_without_waiting_for_headers() -> None:
    class Silent(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: object) -> int:
            raise AssertionError("read past a request line that is no HTTP")

    client = ClientConnection(io.BufferedReader(Silent()), io.BytesIO())
    with pytest.raises(RegistryError) as caught:
        client.read_head(b"\x16\x03\x01\x00\xde\x01\x00\x00\xda\x03\x03 x\n")
    assert caught.value.status == 400
    assert caught.value.message == (
        "a TLS handshake on a plain-HTTP port: the client tried https first"
    )


@pytest.mark.parametrize(
    ("data", "tls"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", True),  # TLS 1.2/1.3 ClientHello
        (b"\x16\x03\x00", True),  # SSL 3.0
        (b"GET / HTTP/1.1\r\n", False),
        (b"\x16\x02", False),
        (b"\x16", False),
        (b"", False),
    ],
)
def test_a_tls_handshake_is_told_from_a_request_line(data: bytes, tls: bool) -> None:
    assert is_tls_handshake(data) is tls


@pytest.mark.parametrize(
    ("request_line", "status", "words"),
    [
        (b"GET /v2/\r\n", 400, "not an HTTP/1.x request line"),
        (b"GET /v2/ HTTP/1.1 extra\r\n", 400, "not an HTTP/1.x request line"),
        (b"GET /v2/ HTTP/2.0\r\n", 505, "HTTP/2.0"),
        (b"GET /v2/ HTTP/1.10\r\n", 400, "illegal request line"),
        (b"GET /v2/ FTP/1.1\r\n", 400, "not an HTTP/1.x request line"),
        (b"G(T /v2/ HTTP/1.1\r\n", 400, "illegal request line"),
        (b"GET /v2/\x1b HTTP/1.1\r\n", 400, "illegal request line"),
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
        (b"Host: a\r\nX-Folded: a\r\n\tb\r\n\r\n", "folded"),
        (b"Host: a\rX-Evil: 1\r\n\r\n", "control character"),
        (b"Host: a\x00\r\n\r\n", "control character"),
        (b"Host: a\r\nX-Esc: \x1b[2J\r\n\r\n", "control character"),
        (b"Host: a\r\nX-Del: a\x7f\r\n\r\n", "control character"),
        (b"Host : a\r\n\r\n", "illegal header line"),
        (b"Host: a\r\nno colon here\r\n\r\n", "illegal header line"),
        (b"Host: a\r\n: empty name\r\n\r\n", "illegal header line"),
        (b"\r\n", "Host"),
        (b"Host: a\r\nHost: b\r\n\r\n", "multiple Host"),
        (b"Host: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "more than one Content"),
        (b"Host: a\r\nContent-Length: 1, 1\r\n\r\n", "invalid Content-Length"),
        (b"Host: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
        (b"Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "more"),
        (b"Host: a\r\nContent-Length: +1\r\n\r\n", "invalid Content-Length"),
        (b"Host: a\r\nContent-Length: " + b"9" * 17 + b"\r\n\r\n", "invalid Content-Length"),
        (b"Host: a\r\n", "ended before its blank line"),
    ],
)
def test_ambiguous_header_blocks_are_400(block: bytes, words: str) -> None:
    error = refusal(b"GET / HTTP/1.1\r\n", block)
    assert error.status == 400
    assert words in str(error)


def test_a_refusal_never_quotes_a_header_line() -> None:
    error = refusal(b"GET / HTTP/1.1\r\n", b"Host: a\r\nAuthorization: Bearer SECRET\x01\r\n\r\n")
    assert "SECRET" not in str(error)


def test_transfer_encoding_in_http_1_0_is_faulty_framing() -> None:
    error = refusal(b"POST / HTTP/1.0\r\n", b"Transfer-Encoding: chunked\r\n\r\n")
    assert (error.status, "faulty framing" in str(error)) == (400, True)


def test_an_unknown_transfer_coding_is_501() -> None:
    assert (
        refusal(b"PUT / HTTP/1.1\r\n", b"Host: a\r\nTransfer-Encoding: gzip\r\n\r\n").status == 501
    )


def test_oversized_header_blocks_are_431() -> None:
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADER_FIELDS + 1)) + b"\r\n"
    assert refusal(b"GET / HTTP/1.1\r\n", many).status == 431
    big = b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert refusal(b"GET / HTTP/1.1\r\n", big).status == 431
    assert read(b"GET / HTTP/1.1\r\n", b"Host: a\r\n" + b"X-1: 1\r\n" * 99 + b"\r\n")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"0x5\r\nhello\r\n0\r\n\r\n", "chunk"),
        (b"5\r\nhello", "complete"),
        (b"5\r\nhelloXX0\r\n\r\n", "chunk"),
    ],
    ids=["hex-prefix", "cut", "no-crlf-after-data"],
)
def test_a_broken_chunked_body_is_a_400(body: bytes, words: str) -> None:
    client, _ = connection(b"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    client.read_head(b"PUT / HTTP/1.1\r\n")
    with pytest.raises(RegistryError) as caught:
        b"".join(client.body())
    assert (caught.value.status, caught.value.code) == (400, "SIZE_INVALID")
    assert words in str(caught.value)


_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~", min_size=1)
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
_FRAMING = {"host", "content-length", "transfer-encoding"}


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=20))
def test_well_formed_fields_are_read_back_as_sent(fields: list[tuple[str, str]]) -> None:
    fields = [("Host", "a")] + [(n, v) for n, v in fields if n.lower() not in _FRAMING]
    block = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in fields)
    assert read(b"GET / HTTP/1.1\r\n", block + b"\r\n").headers.items == fields
