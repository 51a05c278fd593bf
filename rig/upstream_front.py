"""A registry's address whose behaviour a test or a benchmark switches: the primary of a route
with mirrors, failing as registries fail.

The front listens on one port of 127.0.0.1 for as long as it runs (crev is configured with it
once) and, as it is told, forwards every connection to the real registry behind it, is stopped
(the port refuses connections, as when the registry's process is gone), accepts connections
and never answers (a registry hung, or a load balancer with nothing behind it), or answers
every request itself with one status (a 503 outage or a 429 rate limit, as a registry's own
front answers them). Every switch closes the connections it holds, as a registry that goes
down does, so a pooled keep-alive connection does not outlive the behaviour it was made under.

It counts what it saw in each behaviour: connections accepted, and the requests it answered
itself. Requests it forwards are counted by the registry behind it (its access log).
"""

from __future__ import annotations

import contextlib
import enum
import json
import selectors
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple, Self

HOST = "127.0.0.1"
ACCEPT_POLL_S = 0.05
MAX_HEAD = 64 * 1024
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS |= {503: "Service Unavailable", 504: "Gateway Timeout"}
# What a registry's front says with each status, as a registry error.
_CODES = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}


class Behaviour(enum.Enum):
    FORWARD = "forward"
    STOPPED = "stopped"
    SILENT = "silent"
    STATUS = "status"


class Answered(NamedTuple):
    """A request the front answered itself."""

    method: str
    target: str
    status: int


class UpstreamFront:
    """See the module's docstring. Starts forwarding to `target` (`host:port`)."""

    def __init__(self, target: str) -> None:
        self.target = target
        target_host, _, target_port = target.rpartition(":")
        self._target = (target_host, int(target_port))
        self._lock = threading.Lock()
        self._behaviour = Behaviour.FORWARD
        self._status = 0
        self._live: set[socket.socket] = set()
        self._stopping = threading.Event()
        self.connections: Counter[Behaviour] = Counter()
        self.answered: list[Answered] = []
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="front", daemon=True)

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    # -- switching

    def forward(self) -> None:
        self._switch(Behaviour.FORWARD)

    def stop_registry(self) -> None:
        """The port refuses connections from now on."""
        self._switch(Behaviour.STOPPED)

    def silence(self) -> None:
        """Connections are accepted and never answered from now on."""
        self._switch(Behaviour.SILENT)

    def answer(self, status: int) -> None:
        """Every request is answered `status` from now on, as a registry's front answers an
        outage (503) or a rate limit (429)."""
        self._switch(Behaviour.STATUS, status)

    def clear_counts(self) -> None:
        with self._lock:
            self.connections.clear()
            self.answered.clear()

    def _switch(self, behaviour: Behaviour, status: int = 0) -> None:
        with self._lock:
            self._behaviour, self._status = behaviour, status
            live, self._live = self._live, set()
            if behaviour is Behaviour.STOPPED and self._listener is not None:
                # Closed at once: a close alone waits for the accept loop's poll to return,
                # and the kernel keeps completing handshakes (then resets them) meanwhile.
                _close(self._listener)
                self._listener = None
            elif behaviour is not Behaviour.STOPPED and self._listener is None:
                self._listener = self._listen(self.port)
        for sock in live:
            _close(sock)

    # -- lifecycle

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        with self._lock:
            live, self._live = self._live, set()
            if self._listener is not None:
                _close(self._listener)
                self._listener = None
        for sock in live:
            _close(sock)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_S)
        return listener

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._stopping.wait(ACCEPT_POLL_S)
                continue
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                behaviour, status = self._behaviour, self._status
                if behaviour is Behaviour.STOPPED:
                    _close(conn)
                    continue
                self.connections[behaviour] += 1
                self._live.add(conn)
            conn.settimeout(None)
            serve = {
                Behaviour.FORWARD: self._forward,
                Behaviour.SILENT: self._hold,
                Behaviour.STATUS: self._answer,
            }[behaviour]
            threading.Thread(target=serve, args=(conn, status), daemon=True).start()

    def _forward(self, conn: socket.socket, _status: int) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            self._drop(conn)
            return
        upstream.settimeout(None)
        with self._lock:
            if conn not in self._live:  # switched meanwhile
                _close(upstream)
                return
            self._live.add(upstream)
        with selectors.DefaultSelector() as selector:
            selector.register(conn, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, conn)
            with contextlib.suppress(OSError, ValueError):
                while not self._stopping.is_set():
                    for key, _ in selector.select(ACCEPT_POLL_S):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(256 * 1024)
                        if not data:
                            raise OSError("closed")
                        key.data.sendall(data)
        self._drop(conn, upstream)

    def _hold(self, conn: socket.socket, _status: int) -> None:
        """Read and never answer, until the client gives up or the front switches."""
        with contextlib.suppress(OSError, ValueError):
            while not self._stopping.is_set() and conn.recv(65536):
                pass
        self._drop(conn)

    def _answer(self, conn: socket.socket, status: int) -> None:
        buffered = b""
        with contextlib.suppress(OSError, ValueError):
            while not self._stopping.is_set():
                while b"\r\n\r\n" not in buffered:
                    data = conn.recv(65536)
                    if not data or len(buffered) > MAX_HEAD:
                        raise OSError("closed")
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                with self._lock:
                    self.answered.append(Answered(method, target, status))
                conn.sendall(_status_answer(method, status))
        self._drop(conn)

    def _drop(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._live.discard(sock)
        for sock in socks:
            _close(sock)


def _status_answer(method: str, status: int) -> bytes:
    body = json.dumps(
        {"errors": [{"code": _CODES.get(status, "UNKNOWN"), "message": "front says so"}]}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 60\r\n\r\n"
    ).encode()
    return head if method == "HEAD" else head + body


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextlib.contextmanager
def run_upstream_front(target: str) -> Iterator[UpstreamFront]:
    with UpstreamFront(target) as front:
        yield front
