"""crev's upstream connections: kept alive and reused when an answer was read to its end,
closed when not, and never a failure for the client when the upstream closed one while idle."""

from __future__ import annotations

import fcntl
import gzip
import select
import socket
import ssl
import struct
import termios
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpcore
import pytest
import trustme
from pytest_httpserver import HTTPServer

from crev.errors import UpstreamCutError
from crev.messages import Headers
from crev.upstream import transport
from crev.upstream.connections import Connections, UpstreamRequest
from crev.upstream.response import UpstreamResponse
from crev.urls import URL
from tests.support.keepalive_upstream import KeepAliveServer
from tests.support.local_ca import LocalCA
from tests.support.refusals import refused

TIMEOUT = 5.0
BODY = b"x" * 200_000


def ok(body: bytes = b"hello") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def chunked(parts: list[bytes]) -> bytes:
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"


@pytest.fixture
def serve() -> Iterator[Callable[..., KeepAliveServer]]:
    servers: list[KeepAliveServer] = []

    def start(answer: Callable[[int], bytes | None], **options: Any) -> KeepAliveServer:
        server = KeepAliveServer(answer, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# The tests' connections: each stand-in server is a pool of its own in it.
CONNECTIONS = Connections()


def send(
    method: str,
    url: str,
    headers: Headers,
    timeout: float,
    content: bytes | Iterator[bytes] | None = None,
    connections: Connections = CONNECTIONS,
) -> UpstreamResponse:
    request = UpstreamRequest(method, URL.parse(url), headers, content)
    return connections.send(request, timeout)


def get(url: str, content: bytes | Iterator[bytes] | None = None) -> UpstreamResponse:
    method = "GET" if content is None else "PUT"
    return send(method, url + "/v2/", Headers(), TIMEOUT, content)


def test_sequential_requests_share_one_connection(serve) -> None:
    server = serve(lambda n: ok(b"answer %d" % n))
    bodies = [b"".join(get(server.url).stream()) for _ in range(5)]
    assert bodies == [b"answer %d" % n for n in range(1, 6)]
    assert server.connections == 1


def test_released_small_answers_keep_their_connection(serve) -> None:
    server = serve(lambda n: ok(b"{}"))
    for _ in range(3):
        response = get(server.url)
        assert response.status == 200
        response.release()
    assert server.connections == 1


def test_a_chunked_answer_is_dechunked_and_its_connection_reused(serve) -> None:
    server = serve(lambda n: chunked([b"ab", b"cde", b"%d" % n]))
    first = b"".join(get(server.url).stream())
    second = b"".join(get(server.url).stream())
    assert (first, second) == (b"abcde1", b"abcde2")
    assert server.connections == 1


def test_an_answer_left_unread_closes_its_connection(serve) -> None:
    answers = iter([ok(BODY), ok(b"second")])
    server = serve(lambda n: next(answers))
    abandoned = get(server.url)
    next(abandoned.stream(), None)
    abandoned.close()
    # Had the connection been reused, this would read the rest of the first body.
    assert b"".join(get(server.url).stream()) == b"second"
    assert server.connections == 2


def test_connections_the_upstream_closed_while_idle_never_fail_a_request(serve) -> None:
    server = serve(lambda n: ok(), close_after_answer=True)
    for _ in range(3):
        assert b"".join(get(server.url).stream()) == b"hello"
    assert server.connections == 3


def test_a_request_on_a_connection_closed_in_flight_is_sent_again(serve) -> None:
    # The upstream closes the connection just as crev reuses it: the request never got an
    # answer, so crev sends it again on a fresh connection instead of failing the client.
    server = serve(lambda n: ok(b"first") if n == 1 else None)
    assert b"".join(get(server.url).stream()) == b"first"
    assert b"".join(get(server.url).stream()) == b"first"
    assert server.connections == 2


def test_a_streamed_body_is_never_sent_twice(serve) -> None:
    server = serve(lambda n: ok(b"stored") if n == 1 else None)
    get(server.url).release()
    with refused() as refusal:
        get(server.url, iter([b"part one", b"part two"]))
    assert refusal.status == 502
    assert "closed the connection without answering" in refusal.message
    assert server.connections == 1


def test_only_crevs_own_framing_and_host_reach_the_upstream(serve) -> None:
    server = serve(lambda n: ok())
    headers = Headers(
        [("Host", "evil.example"), ("Transfer-Encoding", "chunked"), ("Accept", "a/b")]
    )
    send("PUT", server.url + "/v2/x", headers, TIMEOUT, b"body").release()
    lines = server.requests[0].decode().split("\r\n")
    port = server.url.rsplit(":", 1)[1]
    assert lines[0] == "PUT /v2/x HTTP/1.1"
    assert sorted(lines[1:]) == sorted(
        [
            f"Host: 127.0.0.1:{port}",
            "User-Agent: crev",
            "Accept: a/b",
            "Accept-Encoding: identity",
            "Content-Length: 4",
        ]
    )


def test_a_clients_accept_encoding_is_kept_and_identity_is_the_default(serve) -> None:
    server = serve(lambda n: ok())
    send("GET", server.url + "/v2/", Headers([("Accept-Encoding", "gzip")]), TIMEOUT).release()
    send("GET", server.url + "/v2/", Headers(), TIMEOUT).release()
    first, second = (request.decode().split("\r\n") for request in server.requests)
    assert [line for line in first if line.startswith("Accept-Encoding")] == [
        "Accept-Encoding: gzip"
    ]
    assert [line for line in second if line.startswith("Accept-Encoding")] == [
        "Accept-Encoding: identity"
    ]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[HTTPServer, Path]]:
    """An HTTPS server whose certificate comes from a fresh CA, and that CA's PEM file. The
    client is made anew around it, as the CA store it trusts is what each test changes."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server, tmp_path / "ca.pem"
    server.stop()


def test_an_https_upstream_is_verified_against_the_ca_store(
    tls_server: tuple[HTTPServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file = tls_server
    server.expect_request("/v2/").respond_with_data("over tls")
    url = server.url_for("/v2/")
    assert url.startswith("https://")

    with refused() as refusal:
        send("GET", url, Headers(), TIMEOUT, connections=Connections())
    assert refusal.status == 502
    assert "CERTIFICATE_VERIFY_FAILED" in refusal.message

    # SSL_CERT_FILE is how a deployment trusts a private CA, as with any OpenSSL client.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    response = send("GET", url, Headers(), TIMEOUT, connections=Connections())
    assert b"".join(response.stream()) == b"over tls"


def test_a_runtime_whose_openssl_finds_no_ca_uses_the_systems_bundle(
    tls_server: tuple[HTTPServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, ca_file = tls_server
    server.expect_request("/v2/").respond_with_data("verified")
    # Where this OpenSSL looks, there is nothing; the distribution's bundle is elsewhere.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(transport, "CA_BUNDLES", (str(tmp_path / "absent.crt"), str(ca_file)))
    response = send("GET", server.url_for("/v2/"), Headers(), TIMEOUT, connections=Connections())
    assert b"".join(response.stream()) == b"verified"


def test_the_ca_store_is_loaded_once_an_https_upstream_is_first_asked(
    serve, tls_server: tuple[HTTPServer, Path]
) -> None:
    tls, ca_file = tls_server
    tls.expect_request("/v2/").respond_with_data("over tls")
    loaded: list[ssl.SSLContext] = []

    def counted_tls_context() -> ssl.SSLContext:
        loaded.append(ssl.create_default_context(cafile=str(ca_file)))
        return loaded[-1]

    connections = Connections(lambda: transport.new_client(counted_tls_context))
    plain = serve(lambda n: ok(b"plain %d" % n))
    assert [
        b"".join(send("GET", plain.url + "/v2/", Headers(), TIMEOUT, None, connections).stream())
        for _ in range(2)
    ] == [b"plain 1", b"plain 2"]
    assert loaded == []
    for _ in range(2):
        answer = send("GET", tls.url_for("/v2/"), Headers(), TIMEOUT, None, connections)
        assert b"".join(answer.stream()) == b"over tls"
    assert len(loaded) == 1
    answer = send("GET", plain.url + "/v2/", Headers(), TIMEOUT, None, connections)
    assert b"".join(answer.stream()) == b"plain 3"
    assert plain.connections == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            "conflicting Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 2\r\n\r\n{}", "illegal header line"),
        (b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\nContent-Length: 2\r\n\r\n{}", "illegal header"),
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}", "illegal status line"),
    ],
    ids=["length-and-chunked", "two-lengths", "signed-length", "no-colon", "nul", "bad-status"],
)
def test_an_answer_that_could_be_read_two_ways_is_a_502(serve, answer: bytes, words: str) -> None:
    server = serve(lambda n: answer)
    with refused() as refusal:
        get(server.url)
    assert refusal.status == 502
    assert "sent a malformed answer" in refusal.message
    assert words in refusal.message


def test_a_folded_header_is_unfolded_before_it_is_passed_on(serve) -> None:
    # RFC 9112 5.2 lets a proxy either refuse obs-fold with a 502 or replace it with spaces
    # before forwarding; h11 does the latter, so no host behind crev ever sees a fold.
    server = serve(lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Folded: a\r\n b\r\n\r\n{}")
    response = get(server.url)
    assert response.headers.get_all("x-folded") == ["a b"]
    assert b"".join(response.stream()) == b"{}"


def test_a_url_crev_cannot_ask_is_a_502() -> None:
    with refused() as refusal:
        send("GET", "ftp://registry.example/v2/", Headers(), TIMEOUT)
    assert refusal.status == 502
    assert "ftp://registry.example/v2/" in refusal.message


def test_cookies_an_upstream_sets_are_never_sent_back(serve) -> None:
    # One process serves every client: a cookie kept from one answer would go out with the
    # next client's request.
    server = serve(
        lambda n: b"HTTP/1.1 200 OK\r\nSet-Cookie: session=abc\r\nContent-Length: 0\r\n\r\n"
    )
    get(server.url).release()
    get(server.url).release()
    assert len(server.requests) == 2
    assert all(b"cookie" not in head.lower() for head in server.requests)


def test_cookies_an_upstream_sets_are_not_kept(serve) -> None:
    # Kept, though never sent, they would pile up for as long as the process lives.
    server = serve(
        lambda n: b"HTTP/1.1 200 OK\r\nSet-Cookie: s%d=abc\r\nContent-Length: 0\r\n\r\n" % n
    )
    client = transport.new_client()
    connections = Connections(lambda: client)
    for _ in range(3):
        send("GET", server.url + "/v2/", Headers(), TIMEOUT, connections=connections).release()
    assert len(server.requests) == 3
    assert len(client.cookies.jar) == 0
    connections.close()


def test_a_redirect_is_handed_back_as_it_came(serve) -> None:
    location = b"https://storage.example/blob?signature=x"
    server = serve(
        lambda n: b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
        b"Content-Length: 0\r\n\r\n" % location
    )
    response = get(server.url)
    assert response.status == 307
    assert response.headers.get("location") == location.decode()
    response.release()
    assert len(server.requests) == 1


def test_interim_answers_are_skipped_and_an_http_1_0_answer_closes(serve) -> None:
    answers = [
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\n"
        b"Content-Length: 5\r\n\r\nfinal",
        b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
    ]
    server = serve(lambda n: answers[n - 1] if n <= len(answers) else None)
    assert b"".join(get(server.url).stream()) == b"final"
    assert b"".join(get(server.url).stream()) == b"old"
    assert b"".join(get(server.url).stream()) == b"final"
    # The HTTP/1.0 answer (no keep-alive) ended its connection; the third came on a new one.
    assert server.connections == 2


def test_a_body_delimited_by_close_is_read_to_the_end(serve) -> None:
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    server = serve(lambda n: answer, close_after_answer=True)
    assert b"".join(get(server.url).stream()) == b"until the end"


def coded(body: bytes, coding: str) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        coding.encode(),
        len(body),
        body,
    )


@pytest.mark.parametrize(
    ("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_a_body_crev_reads_has_its_content_coding_undone(serve, coding: str, compress) -> None:
    server = serve(lambda n: coded(compress(b'{"token": "t"}'), coding))
    assert get(server.url).read(1024, TIMEOUT) == b'{"token": "t"}'
    assert server.connections == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        # A few hundred bytes that inflate past the limit: the limit holds after decoding too.
        (coded(gzip.compress(b"0" * 100_000), "gzip"), "over 1024 bytes"),
        (coded(gzip.compress(b"{}")[:-8], "gzip"), "ends inside its compressed data"),
        (coded(b"not gzip", "gzip"), "not validly compressed"),
        (coded(b"{}", "br"), "coding crev cannot read: 'br'"),
    ],
    ids=["bomb", "truncated", "garbage", "unknown-coding"],
)
def test_a_body_crev_cannot_decode_within_its_limit_is_a_502(serve, answer, words) -> None:
    server = serve(lambda n: answer)
    with refused() as refusal:
        get(server.url).read(1024, TIMEOUT)
    assert refusal.status == 502
    assert words in refusal.message


# --- HTTP/1.1 framing toward upstreams (RFC 9110, 9112) ----------------------------------------


def test_an_empty_post_carries_content_length_0(serve) -> None:
    # Registries behind Google's front end answer a POST without a length with 411.
    server = serve(lambda n: ok(b""))
    send("POST", server.url + "/v2/x/blobs/uploads/", Headers(), TIMEOUT).release()
    assert b"\r\nContent-Length: 0" in server.requests[0]
    assert b"transfer-encoding" not in server.requests[0].lower()


def test_a_post_is_never_sent_twice_when_its_connection_closes(serve) -> None:
    # The pooled connection closes after the request was written: the upstream may have acted
    # on it, so the client gets a 502 and decides (RFC 9112 9.3.1), instead of a second POST.
    server = serve(lambda n: ok(b"first") if n == 1 else None)
    get(server.url).release()
    with refused() as refusal:
        send("POST", server.url + "/v2/token", Headers(), TIMEOUT, b"grant_type=x")
    assert refusal.status == 502
    assert [head.split(b" ", 1)[0] for head in server.requests] == [b"GET", b"POST"]
    assert server.connections == 1


@pytest.mark.parametrize(
    "size", [b"0x5", b"+5", b"5_0", b" 5", b"5\n"], ids=["hex", "plus", "underscore", "space", "lf"]
)
def test_an_answer_with_a_malformed_chunk_size_is_cut_and_its_connection_dropped(
    serve, size: bytes
) -> None:
    broken = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n"
    )
    answers = iter([broken, ok(b"next")])
    server = serve(lambda n: next(answers))
    with pytest.raises(UpstreamCutError):
        b"".join(get(server.url).stream())
    assert b"".join(get(server.url).stream()) == b"next"
    assert server.connections == 2


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("DELETE", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\n\r\n'),
        ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    ],
    ids=["204", "delete-204", "304", "head-chunked", "head-length"],
)
@pytest.mark.parametrize("done", ["read", "released"])
def test_answers_without_a_body_give_their_connection_back(
    serve, method: str, answer: bytes, done: str
) -> None:
    # No Content-Length to go by: a 204 or 304 has no body by its status (RFC 9112 6.3), and
    # released unread it is still read to its end.
    server = serve(lambda n: answer)
    for _ in range(3):
        response = send(method, server.url + "/v2/", Headers(), TIMEOUT)
        assert not response.has_body
        if done == "read":
            assert b"".join(response.stream()) == b""
        else:
            response.release()
    assert [head.split(b" ", 1)[0] for head in server.requests] == [method.encode()] * 3
    assert server.connections == 1


def test_an_answer_with_a_control_character_h11_lets_through_is_a_502(serve) -> None:
    server = serve(lambda n: b"HTTP/1.1 200 OK\r\nX-Bell: a\x07b\r\nContent-Length: 2\r\n\r\n{}")
    with refused() as refusal:
        get(server.url)
    assert refusal.status == 502
    assert "control character" in refusal.message


def test_a_header_with_obs_text_is_passed_on_byte_for_byte(serve) -> None:
    server = serve(lambda n: ok())
    headers = Headers([("Accept", "a/b; note=caf\xe9")])
    send("GET", server.url + "/v2/", headers, TIMEOUT).release()
    assert b"\r\nAccept: a/b; note=caf\xe9\r\n" in server.requests[0] + b"\r\n"


# ------------------------------------------------------------------ reads of the socket stream
# crev's network stream, over real local sockets: plain TCP, and TLS 1.3 without session
# tickets, so that the bytes a peer's records take on the wire are known exactly.

RECORD = 1000
TLS13_RECORD_OVERHEAD = 22  # header 5, content type 1, AEAD tag 16


class StreamPair(NamedTuple):
    peer: socket.socket  # the upstream's end, plain or TLS
    stream: httpcore.NetworkStream  # crev's end, as its connection pool makes it
    raw: socket.socket  # crev's end of the TCP connection


@pytest.fixture
def plain_pair() -> Iterator[StreamPair]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = transport._DeadlineBackend().connect_tcp("127.0.0.1", listener.getsockname()[1])
        peer, _ = listener.accept()
    yield StreamPair(peer, stream, stream.get_extra_info("socket"))
    stream.close()
    peer.close()


@pytest.fixture
def tls_pair() -> Iterator[StreamPair]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.num_tickets = 0
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            accepted.append(server_context.wrap_socket(conn, server_side=True))

        handshake = threading.Thread(target=accept)
        handshake.start()
        tcp = transport._DeadlineBackend().connect_tcp("127.0.0.1", listener.getsockname()[1])
        stream = tcp.start_tls(client_context, "127.0.0.1", TIMEOUT)
        handshake.join()
    yield StreamPair(accepted[0], stream, stream.get_extra_info("socket"))
    stream.close()
    accepted[0].close()


def wait_until_held(sock: socket.socket, size: int) -> None:
    """Until the kernel holds `size` bytes unread on `sock` (loopback delivers them soon)."""
    deadline = time.monotonic() + TIMEOUT
    while fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0") != struct.pack("i", size):
        assert time.monotonic() < deadline, f"never held {size} bytes"
        time.sleep(0.001)


def send_records(pair: StreamPair, count: int) -> bytes:
    """`count` TLS records of RECORD bytes each, held by crev's socket once this returns."""
    records = [bytes([65 + n % 26]) * RECORD for n in range(count)]
    for record in records:
        pair.peer.sendall(record)  # one write below 16 KiB, one record
    wait_until_held(pair.raw, count * (RECORD + TLS13_RECORD_OVERHEAD))
    return b"".join(records)


def test_a_tls_read_returns_every_record_the_socket_holds(tls_pair: StreamPair) -> None:
    sent = send_records(tls_pair, 20)
    assert tls_pair.stream.read(65536, TIMEOUT) == sent
    # The socket is left as httpcore set it for this read: blocking, with its timeout.
    assert tls_pair.raw.gettimeout() == TIMEOUT


def test_a_tls_read_takes_at_most_stream_read_bytes(
    tls_pair: StreamPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "STREAM_READ_BYTES", 2500)
    sent = send_records(tls_pair, 6)
    reads = [tls_pair.stream.read(1024, TIMEOUT) for _ in range(3)]
    assert [len(read) for read in reads] == [2500, 2500, 1000]
    assert b"".join(reads) == sent


def test_a_read_waits_only_for_its_first_bytes(tls_pair: StreamPair) -> None:
    sent = send_records(tls_pair, 2)
    started = time.monotonic()
    # The peer stays silent after two records: the read returns them at once, and the next
    # read waits for the timeout httpcore gives it, as before.
    assert tls_pair.stream.read(65536, TIMEOUT) == sent
    assert time.monotonic() - started < TIMEOUT / 2
    with pytest.raises(httpcore.ReadTimeout):
        tls_pair.stream.read(65536, 0.2)
    assert tls_pair.raw.gettimeout() == 0.2


def test_a_plain_read_returns_what_the_socket_holds_and_keeps_its_timeout(
    plain_pair: StreamPair,
) -> None:
    plain_pair.peer.sendall(b"held")
    wait_until_held(plain_pair.raw, 4)
    assert plain_pair.stream.read(65536, TIMEOUT) == b"held"
    assert plain_pair.raw.gettimeout() == TIMEOUT
    plain_pair.peer.close()
    assert plain_pair.stream.read(65536, TIMEOUT) == b""


def test_a_deadline_past_fails_a_read_before_it_waits(tls_pair: StreamPair) -> None:
    send_records(tls_pair, 1)
    with transport.Deadline(0.0), pytest.raises(httpcore.ReadTimeout):
        tls_pair.stream.read(65536, TIMEOUT)
    assert tls_pair.stream.read(65536, TIMEOUT) == b"A" * RECORD


def test_a_reset_met_after_held_bytes_fails_the_next_read_rather_than_ending_it(
    plain_pair: StreamPair,
) -> None:
    # A body delimited by the connection's close would otherwise end early and look whole.
    plain_pair.peer.sendall(b"partial")
    plain_pair.peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    plain_pair.peer.close()  # a reset
    hangup = select.poll()
    hangup.register(plain_pair.raw, 0)  # only POLLHUP and POLLERR, reported once it is reset
    assert hangup.poll(TIMEOUT * 1000)
    assert plain_pair.stream.read(65536, TIMEOUT) == b"partial"
    assert plain_pair.raw.gettimeout() == TIMEOUT
    with pytest.raises(httpcore.ReadError):
        plain_pair.stream.read(65536, TIMEOUT)


def test_an_idle_stream_is_readable_once_the_upstream_closes_it(plain_pair: StreamPair) -> None:
    # What httpcore asks of each idle pooled connection before reusing one.
    assert not plain_pair.stream.get_extra_info("is_readable")
    plain_pair.peer.close()
    hangup = select.poll()
    hangup.register(plain_pair.raw, select.POLLIN)
    assert hangup.poll(TIMEOUT * 1000)
    assert plain_pair.stream.get_extra_info("is_readable")
    plain_pair.stream.close()
    assert plain_pair.stream.get_extra_info("is_readable")


def test_the_upstream_client_serves_httpx_s_own_calls_and_refuses_following(serve) -> None:
    server = serve(lambda n: ok(b"answer"))
    with transport.new_client() as client:
        assert client.get(server.url + "/v2/").content == b"answer"
        with pytest.raises(ValueError, match="follows no redirect"):
            client.get(server.url + "/v2/", follow_redirects=True)
    assert len(server.requests) == 1


# ------------------------------------------------------------- ends of a TLS upstream's answers


@pytest.fixture(scope="module")
def local_ca() -> LocalCA:
    return LocalCA()


def over_tls(local_ca: LocalCA) -> Connections:
    return Connections(lambda: transport.new_client(local_ca.client_context))


ENDS = pytest.mark.parametrize("close_notify", [True, False], ids=["close-notify", "abrupt"])


@ENDS
def test_a_pooled_tls_connection_the_upstream_closed_is_not_reused(
    serve, local_ca: LocalCA, close_notify: bool
) -> None:
    # A POST is never sent again: sent on a connection the upstream had closed, it would fail.
    server = serve(
        lambda n: ok(b"answer"),
        close_after_answer=True,
        tls=local_ca.server_context(),
        close_notify=close_notify,
    )
    connections = over_tls(local_ca)
    first = send("GET", server.url + "/v2/", Headers(), TIMEOUT, connections=connections)
    assert b"".join(first.stream()) == b"answer"
    time.sleep(0.2)  # the upstream's end reaches crev's idle connection
    second = send("POST", server.url + "/v2/", Headers(), TIMEOUT, b"{}", connections)
    assert b"".join(second.stream()) == b"answer"
    assert server.connections == 2
    connections.close()


@ENDS
def test_a_tls_body_cut_short_is_cut_however_the_connection_ends(
    serve, local_ca: LocalCA, close_notify: bool
) -> None:
    server = serve(
        lambda n: b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500,
        close_after_answer=True,
        tls=local_ca.server_context(),
        close_notify=close_notify,
    )
    connections = over_tls(local_ca)
    response = send("GET", server.url + "/v2/", Headers(), TIMEOUT, connections=connections)
    with pytest.raises(UpstreamCutError):
        b"".join(response.stream())
    connections.close()


@ENDS
def test_a_tls_body_delimited_by_close_is_read_to_its_end(
    serve, local_ca: LocalCA, close_notify: bool
) -> None:
    server = serve(
        lambda n: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BODY,
        close_after_answer=True,
        tls=local_ca.server_context(),
        close_notify=close_notify,
    )
    connections = over_tls(local_ca)
    response = send("GET", server.url + "/v2/", Headers(), TIMEOUT, connections=connections)
    assert b"".join(response.stream()) == BODY
    connections.close()
