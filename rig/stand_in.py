"""The base of the HTTP stand-ins the harness runs in its own threads (the token issuer, the
paginating upstream, the caching edge, Vercel's edge): a threaded HTTP/1.1 server on a free port
of 127.0.0.1, started and stopped in one place, and what a stand-in that forwards must not pass
on."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 5.0

# RFC 9110 7.6.1: fields that describe one connection, not the message; whoever forwards a
# message drops them, and the fields its `Connection` names.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields of a message a stand-in passes on: all but the hop-by-hop ones."""
    items = list(headers)
    named = {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in items
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


class StandInHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, and quiet: a stand-in records what it saw itself."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class AnyMethodHandler(StandInHandler):
    """A stand-in that takes every method to `serve`, as a proxy does."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def serve(self) -> None:
        raise NotImplementedError


class StandInServer(ThreadingHTTPServer):
    """A stand-in on a free port of `host`, serving in a thread of its own from `start` to
    `stop` (or as a context manager); with `ssl_context`, over TLS."""

    daemon_threads = True
    # Clients pull in parallel; the default backlog of 5 drops connections.
    request_queue_size = 128

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        host: str = HOST,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "stand-in",
    ) -> None:
        super().__init__((host, 0), handler)
        self.scheme = "http"
        if ssl_context is not None:
            # Handshake lazily in the handler thread, so one slow client cannot stall accept().
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), name=name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        """`host:port`, as a client's `Host` names it."""
        return f"{self.server_address[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(STOP_TIMEOUT_S)
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
