"""crev's TLS stream over real local sockets: the handshake and its failures as httpcore names
them, records split anywhere on the wire, reads that take all that is held, one deadline per
call, and the ends of a connection (close_notify, an abrupt end, a reset)."""

from __future__ import annotations

import fcntl
import os
import select
import socket
import ssl
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import httpcore
import pytest

from crev.upstream import tls_stream
from crev.upstream.tls_stream import TLSStream
from tests.support.tls_peer import LocalCA, TLSPeer, tls_listener

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA()


@contextmanager
def connected(
    ca: LocalCA,
    *,
    server: ssl.SSLContext | None = None,
    client: ssl.SSLContext | None = None,
    hostname: str = "127.0.0.1",
) -> Iterator[tuple[TLSStream, TLSPeer]]:
    """crev's stream and the peer it shook hands with, both open while the block runs."""
    server = server or ca.server_context()
    peers: list[TLSPeer] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            peers.append(TLSPeer(conn, server))
            peers[0].handshake()

        handshake = threading.Thread(target=accept)
        handshake.start()
        sock = socket.create_connection(listener.getsockname()[:2], TIMEOUT)
        stream = TLSStream.start(sock, client or ca.client_context(), hostname, TIMEOUT)
        handshake.join()
    try:
        yield stream, peers[0]
    finally:
        stream.close()
        peers[0].sock.close()


def held(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]


def wait_until_held(sock: socket.socket, size: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while held(sock) != size:
        assert time.monotonic() < deadline, f"never held {size} bytes"
        time.sleep(0.001)


def read_all(stream: TLSStream, size: int) -> list[bytes]:
    reads: list[bytes] = []
    while sum(map(len, reads)) < size:
        data = stream.read(65536, TIMEOUT)
        assert data, "the stream ended early"
        reads.append(data)
    return reads


# ------------------------------------------------------------------------------- the handshake


def failed_handshake(
    serve: Callable[[socket.socket], None], client: ssl.SSLContext, timeout: float = TIMEOUT
) -> tuple[Exception, socket.socket]:
    with tls_listener(ssl.create_default_context(), serve) as address:
        sock = socket.create_connection(address, TIMEOUT)
        with pytest.raises((httpcore.ConnectError, httpcore.ConnectTimeout)) as failure:
            TLSStream.start(sock, client, "127.0.0.1", timeout)
    return failure.value, sock


def tls_server(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        with suppress(OSError), conn:
            TLSPeer(conn, context).handshake()

    return serve


def test_an_untrusted_certificate_fails_the_handshake_as_httpcore_names_it(ca: LocalCA) -> None:
    error, sock = failed_handshake(tls_server(ca.server_context()), ssl.create_default_context())
    assert isinstance(error, httpcore.ConnectError)
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert sock.fileno() == -1  # closed, as httpcore's stream closes it


def test_a_certificate_for_another_name_fails_the_handshake(ca: LocalCA) -> None:
    server = ca.server_context("registry.example")
    error, _ = failed_handshake(tls_server(server), ca.client_context())
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert "127.0.0.1" in str(error)


def test_a_plain_http_server_fails_the_handshake_with_wrong_version_number(ca: LocalCA) -> None:
    def plain(conn: socket.socket) -> None:
        with suppress(OSError), conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    error, _ = failed_handshake(plain, ca.client_context())
    assert isinstance(error, httpcore.ConnectError)
    assert isinstance(error.__cause__, ssl.SSLError)
    assert error.__cause__.reason == "WRONG_VERSION_NUMBER"


def drip(conn: socket.socket, data: bytes, interval: float = 0.05) -> None:
    with suppress(OSError), conn:
        for byte in data:
            conn.sendall(bytes([byte]))
            time.sleep(interval)


def test_the_handshake_ends_by_one_deadline_however_the_server_drips(ca: LocalCA) -> None:
    # A server that keeps sending a byte now and then, never a whole record: each wait is
    # short, and only a deadline over the whole handshake ends it.
    record = b"\x16\x03\x03\x40\x00" + b"\x00" * 0x4000

    def dripping(conn: socket.socket) -> None:
        conn.recv(65536)
        drip(conn, record)

    started = time.monotonic()
    error, sock = failed_handshake(dripping, ca.client_context(), timeout=0.5)
    assert isinstance(error, httpcore.ConnectTimeout)
    assert time.monotonic() - started < 2.0
    assert sock.fileno() == -1


def test_sni_alpn_and_the_connections_details_as_httpcore_asks_them(ca: LocalCA) -> None:
    server = ca.server_context("registry.test")
    names: list[str | None] = []
    server.sni_callback = lambda _sock, name, _context: names.append(name)  # type: ignore[assignment,func-returns-value]
    server.set_alpn_protocols(["h2", "http/1.1"])
    client = ca.client_context()
    client.set_alpn_protocols(["http/1.1"])
    with connected(ca, server=server, client=client, hostname="registry.test") as (stream, peer):
        assert names == ["registry.test"]
        assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        assert stream.get_extra_info("server_addr") == peer.sock.getsockname()
        assert stream.get_extra_info("client_addr") == peer.sock.getpeername()
        assert stream.get_extra_info("socket").getpeername() == peer.sock.getsockname()
        assert stream.get_extra_info("other") is None


# ------------------------------------------------------------------------------------- reads


def test_a_body_split_anywhere_on_the_wire_arrives_whole(ca: LocalCA) -> None:
    body = os.urandom(1_000_000)
    with connected(ca) as (stream, peer):
        wire = peer.records(body)
        # Pieces that end inside records' headers and bodies, some sent after a pause so that
        # a record's start and its end come in different socket reads.
        sizes = [1, 4, 7, 3000, 16400, 5, 70_000, 200_001]
        start = 0
        pieces = []
        while start < len(wire):
            size = sizes[len(pieces) % len(sizes)]
            pieces.append(wire[start : start + size])
            start += size

        def send() -> None:
            for number, piece in enumerate(pieces):
                peer.sock.sendall(piece)
                if number % 3 == 0:
                    time.sleep(0.002)

        sender = threading.Thread(target=send)
        sender.start()
        reads = read_all(stream, len(body))
        sender.join()
    assert b"".join(reads) == body


def test_a_read_returns_every_record_held_up_to_max_bytes(ca: LocalCA) -> None:
    body = os.urandom(20 * 1000)
    with connected(ca) as (stream, peer):
        wire = peer.records(body, size=1000)
        peer.sock.sendall(wire)
        wait_until_held(stream.get_extra_info("socket"), len(wire))
        assert stream.read(2500, TIMEOUT) == body[:2500]
        assert stream.read(65536, TIMEOUT) == body[2500:]


def test_a_read_takes_more_of_what_the_socket_holds_than_one_socket_read_gave(
    ca: LocalCA,
) -> None:
    # Tiny records: one socket read sized for the plaintext asked gives less than that.
    body = os.urandom(10_000)
    with connected(ca) as (stream, peer):
        wire = peer.records(body, size=10)
        peer.sock.sendall(wire)
        wait_until_held(stream.get_extra_info("socket"), len(wire))
        assert stream.read(10_000, TIMEOUT) == body


def test_plaintext_openssl_holds_is_read_without_waiting_and_makes_the_stream_readable(
    ca: LocalCA,
) -> None:
    with connected(ca) as (stream, peer):
        peer.sock.sendall(peer.records(b"a" * 10_000))
        assert stream.read(1000, TIMEOUT) == b"a" * 1000
        assert held(stream.get_extra_info("socket")) == 0
        # The socket is empty: only OpenSSL holds the rest of the record.
        assert stream.get_extra_info("is_readable")
        started = time.monotonic()
        assert stream.read(65536, TIMEOUT) == b"a" * 9000
        assert time.monotonic() - started < TIMEOUT / 2
        assert not stream.get_extra_info("is_readable")


def test_a_read_waits_only_for_its_first_bytes_and_keeps_the_timeout_it_was_given(
    ca: LocalCA,
) -> None:
    with connected(ca) as (stream, peer):
        peer.sock.sendall(peer.records(b"first"))
        assert stream.read(65536, TIMEOUT) == b"first"
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(65536, 0.2)
        assert stream.get_extra_info("socket").gettimeout() == 0.2


def test_a_read_ends_by_one_deadline_however_the_upstream_drips(ca: LocalCA) -> None:
    with connected(ca) as (stream, peer):
        record = peer.records(b"x" * 100)
        dripping = threading.Thread(target=drip, args=(peer.sock, record))
        dripping.start()
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(65536, 0.5)
        assert time.monotonic() - started < 2.0
        stream.close()
        dripping.join()


def test_tls_1_3_session_tickets_after_the_handshake_are_taken_in_passing(ca: LocalCA) -> None:
    server = ca.server_context(tickets=2)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    with connected(ca, server=server) as (stream, peer):
        # The tickets alone come first (the server sent them as the handshake ended).
        sock = stream.get_extra_info("socket")
        deadline = time.monotonic() + TIMEOUT
        while not held(sock):
            assert time.monotonic() < deadline, "no session ticket came"
            time.sleep(0.001)
        later = threading.Timer(0.2, lambda: peer.sock.sendall(peer.records(b"answer")))
        later.start()
        assert stream.read(65536, TIMEOUT) == b"answer"
        later.join()
        assert stream.get_extra_info("ssl_object").session.has_ticket


# ---------------------------------------------------------------------------------- the ends


def test_a_close_notify_ends_the_stream_after_what_came_before(ca: LocalCA) -> None:
    with connected(ca) as (stream, peer):
        assert not stream.get_extra_info("is_readable")
        peer.sock.sendall(peer.records(b"last words") + peer.close_notify())
        assert stream.read(65536, TIMEOUT) == b"last words"
        assert stream.read(65536, TIMEOUT) == b""
        assert stream.read(65536, TIMEOUT) == b""
        assert stream.get_extra_info("is_readable")


def test_an_end_without_close_notify_ends_the_stream_as_ssl_sockets_do(ca: LocalCA) -> None:
    # Python's SSLSocket suppresses such "ragged" ends; whether a body was cut short is for
    # the HTTP framing above to say.
    with connected(ca) as (stream, peer):
        peer.sock.sendall(peer.records(b"cut") + peer.records(b"half a record")[:10])
        peer.sock.shutdown(socket.SHUT_WR)
        assert b"".join(iter(lambda: stream.read(65536, TIMEOUT), b"")) == b"cut"
        assert stream.get_extra_info("is_readable")


def test_an_idle_stream_is_readable_once_the_upstream_closes_it(ca: LocalCA) -> None:
    with connected(ca) as (stream, peer):
        assert not stream.get_extra_info("is_readable")
        peer.sock.close()
        hangup = select.poll()
        hangup.register(stream.get_extra_info("socket"), select.POLLIN)
        assert hangup.poll(TIMEOUT * 1000)
        assert stream.get_extra_info("is_readable")
        stream.close()
        assert stream.get_extra_info("is_readable")


def test_a_reset_met_after_held_bytes_fails_the_next_read(ca: LocalCA) -> None:
    body = os.urandom(100_000)
    with connected(ca) as (stream, peer):
        wire = peer.records(body)
        peer.sock.sendall(wire)
        wait_until_held(stream.get_extra_info("socket"), len(wire))
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.sock.close()  # a reset
        reads = []
        with pytest.raises(httpcore.ReadError):
            while True:
                data = stream.read(65536, TIMEOUT)
                assert data
                reads.append(data)
    # The socket held the whole body before the reset: all of it comes first.
    assert b"".join(reads) == body


def test_a_reset_met_while_taking_what_is_held_fails_the_read_after(ca: LocalCA) -> None:
    body = os.urandom(10_000)
    with connected(ca) as (stream, peer):
        wire = peer.records(body, size=10)
        peer.sock.sendall(wire)
        socket_ = stream.get_extra_info("socket")
        wait_until_held(socket_, len(wire))
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.sock.close()  # a reset
        hangup = select.poll()
        hangup.register(socket_, 0)
        assert hangup.poll(TIMEOUT * 1000)
        # Sized so that the read's first socket read takes every byte held (tiny records:
        # less plaintext than asked), and its next one meets the reset.
        assert stream.read(len(wire) - tls_stream._RECORD_BYTES, TIMEOUT) == body
        with pytest.raises(httpcore.ReadError):
            stream.read(65536, TIMEOUT)


# ------------------------------------------------------------------------------------ writes


def test_a_write_reaches_the_peer_whole(ca: LocalCA) -> None:
    request = os.urandom(100_000)
    with connected(ca) as (stream, peer):
        stream.write(request, TIMEOUT)
        received = b""
        while len(received) < len(request):
            received += peer.received()
    assert received == request


def test_a_write_the_peer_does_not_read_times_out(ca: LocalCA) -> None:
    with connected(ca) as (stream, _peer), pytest.raises(httpcore.WriteTimeout):
        for _ in range(1000):
            stream.write(b"x" * 1_000_000, 0.2)


def test_a_write_after_the_peer_reset_fails(ca: LocalCA) -> None:
    with connected(ca) as (stream, peer):
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.sock.close()
        time.sleep(0.05)
        with pytest.raises(httpcore.WriteError):
            for _ in range(100):
                stream.write(b"x" * 100_000, TIMEOUT)
