"""Raw-socket stand-in upstreams that misbehave on purpose, each in its own threads.

pytest-httpserver (werkzeug) always answers well-formed HTTP; these speak bytes, so a test can
stall before the headers, drip them, cut a body after its headers promised more, reset the
connection, or fail a TLS handshake. Every accepted connection and every request head is
recorded, so a test can also assert that a server saw nothing at all.

A server answers each request with the `Behaviour` its `route` returns for it (`respond` by
default); a behaviour is a function that writes to the socket and returns when done. Connections
are one request each (answers carry `Connection: close`), which keeps the bookkeeping exact.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
MAX_HEAD = 1024 * 1024
ACCEPT_POLL_S = 0.05


@dataclass(frozen=True)
class RawRequest:
    """One request head exactly as it arrived (the target is not decoded)."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class StoppingError(Exception):
    """The server is shutting down; a behaviour gives up."""


@dataclass
class Connection:
    """The socket a behaviour writes to, with sleeps that end early when the server stops."""

    sock: socket.socket
    stopped: threading.Event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def sleep(self, seconds: float) -> None:
        if self.stopped.wait(seconds):
            raise StoppingError

    def reset(self) -> None:
        """Close with RST instead of FIN (SO_LINGER 0), like a crashed peer."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


Behaviour = Callable[[RawRequest, Connection], None]


def head(status: int, headers: list[tuple[str, str]] | None = None, reason: str = "X") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(
    status: int = 200,
    body: bytes = b'{"ok":true}',
    headers: list[tuple[str, str]] | None = None,
) -> Behaviour:
    """A complete, well-formed answer."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        fields = list(headers or [])
        if not any(name.lower() == "content-type" for name, _ in fields):
            fields.insert(0, ("Content-Type", "application/json"))
        fields.append(("Content-Length", str(len(body))))
        conn.send(head(status, fields) + (b"" if request.method == "HEAD" else body))

    return behaviour


# Answers from a stand-in carry this header, so a test can tell them from crev's own.
UPSTREAM_MARK = ("X-Stand-In", "upstream")
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


def healthy(request: RawRequest) -> Behaviour:
    """A route for a well-behaved upstream: a marked 200 for anything."""
    return respond(200, MANIFEST, [UPSTREAM_MARK])


def silent(seconds: float = 30.0) -> Behaviour:
    """Read the request, then say nothing (a timeout before headers)."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.sleep(seconds)

    return behaviour


def drip_head(interval: float = 0.3, total: float = 30.0) -> Behaviour:
    """Start an answer at once but send its head one byte per `interval`, for `total` seconds:
    no single read waits long, yet the headers never finish."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\n")
        started = time.monotonic()
        while time.monotonic() - started < total:
            conn.send(b"X-Drip: " if time.monotonic() - started < interval else b"a")
            conn.sleep(interval)

    return behaviour


def drip_body(
    status: int,
    headers: list[tuple[str, str]],
    length: int,
    interval: float = 0.3,
    total: float = 30.0,
) -> Behaviour:
    """Send the head at once, then the body one byte per `interval` for `total` seconds."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(head(status, [*headers, ("Content-Length", str(length))]))
        started = time.monotonic()
        while time.monotonic() - started < total:
            conn.send(b"x")
            conn.sleep(interval)

    return behaviour


def stall_mid_body(length: int, sent: bytes, seconds: float = 30.0) -> Behaviour:
    """Promise `length` bytes, send `sent`, then go quiet with the connection open."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(
            head(
                200, [("Content-Type", "application/octet-stream"), ("Content-Length", f"{length}")]
            )
        )
        conn.send(sent)
        conn.sleep(seconds)

    return behaviour


def cut_mid_body(length: int, sent: bytes, *, reset: bool) -> Behaviour:
    """Promise `length` bytes, send `sent`, then close (FIN) or reset (RST) the connection."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(
            head(
                200, [("Content-Type", "application/octet-stream"), ("Content-Length", f"{length}")]
            )
        )
        conn.send(sent)
        time.sleep(0.05)
        if reset:
            conn.reset()

    return behaviour


def chunked_cut(chunks: list[bytes]) -> Behaviour:
    """A chunked answer that sends `chunks` and closes without the terminating zero chunk."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(
            head(
                200,
                [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")],
            )
        )
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        time.sleep(0.05)

    return behaviour


def raw_answer(data: bytes) -> Behaviour:
    """Exactly these bytes, then close."""

    def behaviour(request: RawRequest, conn: Connection) -> None:
        conn.send(data)

    return behaviour


@dataclass
class RawUpstream:
    """A server on 127.0.0.1; `route(request)` picks each answer (`respond()` when it gives None).

    `tls` wraps every accepted connection in that server context (a handshake failure is
    recorded in `handshake_errors`)."""

    route: Callable[[RawRequest], Behaviour | None] = lambda request: None
    tls: ssl.SSLContext | None = None
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    handshake_errors: list[str] = field(default_factory=list)
    _listener: socket.socket | None = field(default=None, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _sockets: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.getsockname()[1]

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def paths(self) -> list[str]:
        with self._lock:
            return [request.target for request in self.requests]

    def saw_nothing(self) -> bool:
        """No connection was accepted, none waits in the backlog, no request was read.

        Accepting and counting happen under the same lock as this check, and a client's
        connect() completes before it sends anything, so there is no window in which a
        connection crev already made goes unseen here."""
        with self._lock:
            assert self._listener is not None
            pending = select.select([self._listener], [], [], 0)[0]
            return not pending and self.connections == 0 and not self.requests

    def reset(self, route: Callable[[RawRequest], Behaviour | None] | None = None) -> None:
        """Forget what was seen (and optionally change the route), for a server shared by tests."""
        with self._lock:
            self.requests.clear()
            self.connections = 0
            self.handshake_errors.clear()
            if route is not None:
                self.route = route

    def start(self) -> RawUpstream:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in list(self._threads):
            thread.join(5)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> RawUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                readable = select.select([self._listener], [], [], ACCEPT_POLL_S)[0]
            except (OSError, ValueError):
                return
            if not readable:
                continue
            with self._lock:
                try:
                    sock, _ = self._listener.accept()
                except BlockingIOError:
                    continue
                except OSError:
                    return
                self.connections += 1
                self._sockets.add(sock)
            self._spawn(self._serve, sock)

    def _serve(self, raw: socket.socket) -> None:
        sock = raw
        try:
            sock.settimeout(10)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError) as error:
                    with self._lock:
                        self.handshake_errors.append(repr(error))
                    return
            request = _read_request(sock)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            behaviour = self.route(request) or respond()
            with contextlib.suppress(StoppingError, OSError):
                behaviour(request, Connection(sock, self._stopped))
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(raw)
            for each in (sock, raw):
                with contextlib.suppress(OSError):
                    each.close()


def _read_request(sock: socket.socket) -> RawRequest | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_HEAD:
            return None
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    method, target, version = [*lines[0].split(" ", 2), "", ""][:3]
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    )
    request = RawRequest(method, target, version, headers)
    length = int(request.header("content-length") or 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return RawRequest(method, target, version, headers, rest[:length])


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
