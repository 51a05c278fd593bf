"""The floors under relaying a pull's layers, in-process (`python -m bench floor`).

What reading the eight 2 MiB layers of the 8-layer image from the upstream costs a thread that
does nothing else, and what writing them to a local client costs, one layer after another on
one kept-alive connection each way, each a CPU figure of the working thread alone
(`time.thread_time`): the upstream (the registry, or nginx in front of it) and the client (a
process of its own that drains its socket) are other processes.

- `socket`: a bare `recv_into` loop over a socket (`SSLSocket` from the TLS front), the
  requests written as raw HTTP/1.1 bytes and only the `Content-Length` read from each answer's
  head. A measuring probe, not an HTTP client: it knows the upstream's answers are 200s with a
  length, and nothing else of HTTP.
- `httpx`: httpx's transport as it ships (httpcore's pool, h11), each body iterated
  (`iter_raw`) and dropped.
- `crev's client`: crev's upstream client (`crev.upstream.transport.new_client`: the same
  transport over crev's read stream), each body iterated and dropped.
- `sendall`: the bodies' bytes written to a client's socket with `socket.sendall`, in the
  pieces httpx's transport read them in.
- `h11 write`: the same pieces framed by h11 as a server's answers (a head, the pieces, the
  end) and written with `sendall`, as `http.server`'s socket writer does.
- `relay`: reading through httpx's transport or crev's client and writing through h11, in one
  loop: a relay with nothing of a proxy's own.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import h11
import httpx

from crev.upstream.transport import new_client

from .probes import median

# The most one read asks of the socket: httpcore's own read size.
READ_BYTES = 64 * 1024
# The client's end: it drains what it is sent until the connection closes.
DRAIN = """
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buffer = bytearray(1 << 20)
while sock.recv_into(buffer):
    pass
"""


@dataclass(frozen=True)
class Upstream:
    """Where the layers are read from: `origin` (`scheme://host:port`), trusting `context`
    over TLS."""

    origin: str
    context: ssl.SSLContext | None
    paths: Sequence[str]  # the layers' blob paths
    headers: dict[str, str]  # the token that reads them


# ------------------------------------------------------------------------------ the reads


class RawReader:
    """A measuring probe, not an HTTP client: GETs on one kept-alive socket, written as raw
    bytes, each answer read by `recv_into` into one buffer and dropped; it reads only the
    status and the `Content-Length` of each head."""

    def __init__(self, upstream: Upstream) -> None:
        host = upstream.origin.partition("://")[2]
        name, port = host.rsplit(":", 1)
        sock = socket.create_connection((name, int(port)), timeout=30)
        if upstream.context is not None:
            sock = upstream.context.wrap_socket(sock, server_hostname=name)
        self.sock = sock
        self.view = memoryview(bytearray(READ_BYTES))
        extra = "".join(f"{key}: {value}\r\n" for key, value in upstream.headers.items())
        self.requests = [
            f"GET {path} HTTP/1.1\r\nhost: {host}\r\n{extra}\r\n".encode("ascii")
            for path in upstream.paths
        ]

    def read_all(self) -> int:
        return sum(self.read(request) for request in self.requests)

    def read(self, request: bytes) -> int:
        self.sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            count = self.sock.recv_into(self.view)
            if not count:
                raise RuntimeError("the upstream closed the connection within a head")
            head += self.view[:count]
        head, _, body = head.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if lines[0].split(b" ")[1] != b"200":
            raise RuntimeError(f"the upstream answered {lines[0]!r}")
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length:")
        )
        remaining = length - len(body)
        while remaining:
            count = self.sock.recv_into(self.view, min(remaining, READ_BYTES))
            if not count:
                raise RuntimeError("the upstream closed the connection within a body")
            remaining -= count
        return length

    def close(self) -> None:
        self.sock.close()


Send = Callable[[httpx.Request], httpx.Response]


def stock_transport(upstream: Upstream) -> tuple[Send, Callable[[], None]]:
    """httpx's transport as it ships, keeping its connections as crev keeps its own."""
    limits = httpx.Limits(max_keepalive_connections=64, keepalive_expiry=30)
    transport = httpx.HTTPTransport(verify=upstream.context or True, limits=limits)
    return transport.handle_request, transport.close


def crev_client(upstream: Upstream) -> tuple[Send, Callable[[], None]]:
    """crev's upstream client, trusting the front's CA."""
    context = upstream.context
    client = new_client(lambda: context or ssl.create_default_context())
    return lambda request: client.send(request, stream=True), client.close


def bodies(send: Send, upstream: Upstream) -> Iterator[Iterator[bytes]]:
    """Each layer's body, as the pieces `send`'s answer gives it in."""
    for path in upstream.paths:
        response = send(httpx.Request("GET", upstream.origin + path, headers=upstream.headers))
        try:
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}")
            yield response.iter_raw()
        finally:
            response.close()


# ------------------------------------------------------------------------------ the writes


@contextlib.contextmanager
def local_client() -> Iterator[socket.socket]:
    """A socket to a client process that drains it, with Nagle off (as crev's handler)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-c", DRAIN, str(port)])
        try:
            connection, _ = server.accept()
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with connection:
                yield connection
        finally:
            process.wait(30)


REQUEST = b"GET /v2/name/blobs/digest HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def framed(sock: socket.socket, layers: Iterator[Iterator[bytes]], sizes: Sequence[int]) -> None:
    """Each layer as an h11 server's answer of `size` bytes, written with `sendall`; h11 reads
    a request head of a few bytes before each, as a server must to answer it."""
    connection = h11.Connection(h11.SERVER)
    for pieces, size in zip(layers, sizes, strict=True):
        connection.receive_data(REQUEST)
        connection.next_event()  # the request
        connection.next_event()  # its end
        sock.sendall(
            connection.send(h11.Response(status_code=200, headers=[("content-length", str(size))]))
            or b""
        )
        for piece in pieces:
            sock.sendall(connection.send(h11.Data(data=piece)) or b"")
        sock.sendall(connection.send(h11.EndOfMessage()) or b"")
        connection.start_next_cycle()


# ------------------------------------------------------------------------------ the probes


@dataclass
class Probe:
    """One floor: `run()` does one pass over the eight layers."""

    name: str
    run: Callable[[], object]
    close: Callable[[], None]


def pieces(send: Send, upstream: Upstream) -> int:
    """How many pieces `send`'s answers give the eight layers in."""
    return sum(sum(1 for _ in body) for body in bodies(send, upstream))


def probes(upstream: Upstream, sock: socket.socket) -> list[Probe]:
    """Every floor of one upstream; `sock` is the local client's."""
    raw = RawReader(upstream)
    stock_send, stock_close = stock_transport(upstream)
    crev_send, crev_close = crev_client(upstream)
    relay_send, relay_close = stock_transport(upstream)
    crev_relay_send, crev_relay_close = crev_client(upstream)
    # The pieces httpx's transport reads each layer in, kept to be written.
    layers = [[bytes(piece) for piece in body] for body in bodies(stock_send, upstream)]
    sizes = [sum(len(piece) for piece in layer) for layer in layers]

    def drop(send: Send) -> Callable[[], None]:
        def read() -> None:
            for body in bodies(send, upstream):
                for _ in body:
                    pass

        return read

    def sendall() -> None:
        for layer in layers:
            for piece in layer:
                sock.sendall(piece)

    return [
        Probe("socket read (recv_into)", raw.read_all, raw.close),
        Probe("httpx's transport read", drop(stock_send), stock_close),
        Probe("crev's client read", drop(crev_send), crev_close),
        Probe("sendall write", sendall, lambda: None),
        Probe(
            "h11 write",
            lambda: framed(sock, (iter(layer) for layer in layers), sizes),
            lambda: None,
        ),
        Probe(
            "relay: httpx's transport + h11",
            lambda: framed(sock, bodies(relay_send, upstream), sizes),
            relay_close,
        ),
        Probe(
            "relay: crev's client + h11",
            lambda: framed(sock, bodies(crev_relay_send, upstream), sizes),
            crev_relay_close,
        ),
    ]


def measure(upstream: Upstream, rounds: int, passes: int) -> dict[str, list[float]]:
    """CPU ms per pass over the eight layers, per probe: one figure per round (the mean of
    `passes` passes), probes interleaved round by round, their order turning; and, as
    "pieces: ...", how many pieces httpx's transport and crev's client read a pass in."""
    with local_client() as sock:
        floors = probes(upstream, sock)
        try:
            for probe in floors:  # warm: connections, pools, caches
                probe.run()
            figures: dict[str, list[float]] = {probe.name: [] for probe in floors}
            for name, reader in (
                ("httpx's transport", stock_transport),
                ("crev's client", crev_client),
            ):
                send, close = reader(upstream)
                figures[f"pieces: {name}"] = [float(pieces(send, upstream))]
                close()
            for index in range(rounds):
                turn = index % len(floors)
                for probe in floors[turn:] + floors[:turn]:
                    started = time.thread_time()
                    for _ in range(passes):
                        probe.run()
                    spent = time.thread_time() - started
                    figures[probe.name].append(spent * 1000 / passes)
        finally:
            for probe in floors:
                probe.close()
    return figures


def render(figures: dict[str, list[float]]) -> list[str]:
    counts = {name: values[0] for name, values in figures.items() if name.startswith("pieces")}
    return [
        f"  {name:<32} median {median(values):7.2f}   rounds: "
        + ", ".join(f"{value:.2f}" for value in values)
        for name, values in figures.items()
        if name not in counts
    ] + ["  pieces read per pass: " + ", ".join(f"{n[8:]} {v:.0f}" for n, v in counts.items())]
