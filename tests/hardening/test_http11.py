"""HTTP/1.1 framing crev must honour toward clients (RFC 9110, 9112), over raw sockets: each case
is a defect crev's hand-written wire code once had, and h11 now carries."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest

from rig.crev_process import serving_acme
from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import Connection, RawRequest, RawUpstream, head, respond
from tests.support.wire import exchange, parse, port_of, raw_error

DIGEST = "sha256:" + "a" * 64


def test_an_http_1_0_client_never_gets_a_chunked_answer(
    crev: CrevServer, upstream: RawUpstream
) -> None:
    # An upstream answer of unknown length: crev cannot announce one, and an HTTP/1.0 client
    # cannot read chunks (RFC 9112 6.1), so the body is delimited by closing the connection.
    def chunked(request: RawRequest, conn: Connection) -> None:
        conn.send(head(200, [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n0\r\n\r\n")

    upstream.route = lambda request: chunked
    request = b"GET /v2/tool/manifests/1 HTTP/1.0\r\nHost: crev.test\r\n\r\n"
    raw = exchange(port_of(crev), request, timeout=5)
    response = parse(raw)
    assert response.status == 200
    assert response.header("transfer-encoding") is None
    assert response.header("connection") == "close"
    assert raw.endswith(b"\r\n\r\nhello")


def test_an_http_1_0_request_with_transfer_encoding_is_refused(
    crev: CrevServer, upstream: RawUpstream
) -> None:
    data = (
        b"POST /api/token HTTP/1.0\r\nHost: crev.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nscope\r\n0\r\n\r\n"
    )
    error = raw_error(parse(exchange(port_of(crev), data, timeout=5)), 400)
    assert "HTTP/1.0" in error["message"]
    assert upstream.saw_nothing()


@pytest.mark.parametrize(
    "chunk",
    [b"0x5\r\nhello\r\n", b"+5\r\nhello\r\n", b"5_0\r\nhello\r\n", b"-0\r\n", b"5\nhello\n"],
    ids=["hex-prefix", "plus-sign", "underscore", "minus-zero", "bare-lf"],
)
def test_chunk_sizes_are_hex_digits_and_crlf_only(
    crev: CrevServer, upstream: RawUpstream, chunk: bytes
) -> None:
    data = (
        b"POST /api/token HTTP/1.1\r\nHost: crev.test\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk
        + b"0\r\n\r\n"
    )
    error = raw_error(parse(exchange(port_of(crev), data, timeout=5)), 400, "SIZE_INVALID")
    assert "chunk" in error["message"]
    assert upstream.saw_nothing()


@pytest.fixture
def push_crev(start_crev: Callable[..., CrevServer], upstream: RawUpstream) -> CrevServer:
    return start_crev(
        **serving_acme(upstream.host),
        allow_push="1",
        max_body_bytes="100",
        upstream_timeout="2",
    )


def test_an_empty_upload_start_reaches_the_upstream_with_content_length_0(
    push_crev: CrevServer, upstream: RawUpstream
) -> None:
    # docker starts every upload with an empty POST; Google's front end answers 411 to one
    # without a length (RFC 9110 8.6).
    upstream.route = lambda request: respond(202, b"", [("Location", "/v2/acme/tool/u/1")])
    data = (
        b"POST /v2/tool/blobs/uploads/ HTTP/1.1\r\nHost: crev.test\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert parse(exchange(port_of(push_crev), data, timeout=5)).status == 202
    (request,) = upstream.requests
    assert (request.method, request.path) == ("POST", "/v2/acme/tool/blobs/uploads/")
    assert request.header("content-length") == "0"
    assert request.header("transfer-encoding") is None


def test_a_body_over_the_limit_is_refused_before_anything_goes_upstream(
    push_crev: CrevServer, upstream: RawUpstream
) -> None:
    data = (
        f"PUT /v2/tool/blobs/uploads/1?digest={DIGEST} HTTP/1.1\r\nHost: crev.test\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode() + b"x" * 1000
    raw_error(parse(exchange(port_of(push_crev), data, timeout=5)), 413, "SIZE_INVALID")
    assert upstream.saw_nothing()


def test_control_characters_a_client_sent_reach_the_log_escaped(
    crev: CrevServer, upstream: RawUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crev")
    data = b"GET /v2/\x1b[2Jtool/manifests/1 HTTP/1.1\r\nHost: crev.test\r\n\r\n"
    raw_error(parse(exchange(port_of(crev), data, timeout=5)), 400)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "refused" in logged, "a refused request was not logged"
    assert "\x1b" not in logged
    assert "\\x1b[2J" in logged
    assert upstream.saw_nothing()


def test_a_tls_handshake_on_the_plain_port_is_logged_in_words(
    crev: CrevServer, upstream: RawUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # The first bytes of a ClientHello as podman and skopeo send it when they try https first.
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8f\xe5\xde\x00\x0a\x1b[2J\xff" * 3
    caplog.set_level(logging.INFO, logger="crev")
    raw_error(parse(exchange(port_of(crev), hello, timeout=5)), 400, "UNSUPPORTED")
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    assert line == (
        "refused 400 a TLS handshake on a plain-HTTP port: the client tried https first"
    )
    assert upstream.saw_nothing()


def test_a_client_that_hangs_up_mid_blob_is_logged_as_gone_without_a_traceback(
    crev: CrevServer,
    upstream: RawUpstream,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    size = 64 * 1024 * 1024

    def slow_blob(request: RawRequest, conn: Connection) -> None:
        conn.send(head(200, [("Content-Length", str(size))]))
        piece = b"x" * (1024 * 1024)
        for _ in range(size // len(piece)):
            conn.send(piece)

    upstream.route = lambda request: slow_blob
    caplog.set_level(logging.INFO, logger="crev")
    with socket.create_connection(("127.0.0.1", port_of(crev)), timeout=5) as client:
        client.sendall(f"GET /v2/tool/blobs/{DIGEST} HTTP/1.1\r\nHost: crev.test\r\n\r\n".encode())
        assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        "/blobs/" in record.getMessage() for record in caplog.records
    ):
        time.sleep(0.05)
    (line,) = [r.getMessage() for r in caplog.records if "/blobs/" in r.getMessage()]
    assert line.endswith("client-gone"), line
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in capfd.readouterr().err


def test_a_tls_handshake_is_refused_at_once(crev: CrevServer, upstream: RawUpstream) -> None:
    # skopeo and docker try TLS first on a registry they were told may be insecure, and wait
    # for an answer before falling back to plain HTTP: crev must not wait for a header block.
    hello = b"\x16\x03\x01\x00\xde\x01\x00\x00\xda\x03\x03" + bytes(range(32)) + b"\n"
    started = time.monotonic()
    raw = exchange(port_of(crev), hello, timeout=5)
    assert time.monotonic() - started < 1.0
    raw_error(parse(raw), 400)
    assert upstream.saw_nothing()
