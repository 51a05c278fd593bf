"""The transport under crev's upstream requests: one `httpx.Client` per process, over a
connection pool whose socket reads keep one deadline.

The client lives as long as the process, so a warm serverless instance reuses its keep-alive
connections; it is made on first use, and its TLS side when an https origin is first asked.
httpx (with httpcore and h11 beneath it) frames every request and reads every answer; what this
module adds is one deadline over a whole answer head (a read timeout alone lets an upstream
that drips a byte at a time hold a request forever), and larger socket reads for relaying.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpcore
import httpx

# The most one read of an upstream's socket returns. httpcore asks for 64 KiB; relaying a blob,
# larger reads spend less CPU per byte in httpcore and h11, but each stream holds several copies
# of a read at once (h11's buffer, its event, httpx's chunk), so with many streams at once the
# size bounds crev's memory (bench/README.md has the figures for both).
STREAM_READ_BYTES = 256 * 1024
# Idle connections older than this are closed rather than reused; registries keep theirs open
# for a minute or more, and httpcore notices one the upstream closed meanwhile before use.
KEEPALIVE_SECONDS = 30.0
MAX_CONNECTIONS = 256
MAX_IDLE_CONNECTIONS = 64


# --------------------------------------------------------------------------- the head deadline

_deadline = threading.local()


class Deadline:
    """Every socket read on this thread in the block ends by one deadline, counted from the
    start of the block or from `start()`. httpx reads an answer and writes a request body on
    the calling thread, so a deadline set here bounds exactly this request's reads."""

    def __init__(self, seconds: float, *, started: bool = True) -> None:
        self._seconds = seconds
        self._started = started

    def __enter__(self) -> None:
        _deadline.seconds = self._seconds
        _deadline.at = time.monotonic() + self._seconds if self._started else None

    def __exit__(self, *exc: object) -> None:
        _deadline.at = None
        _deadline.seconds = None

    @staticmethod
    def start() -> None:
        seconds = getattr(_deadline, "seconds", None)
        if seconds is not None:
            _deadline.at = time.monotonic() + seconds


class _DeadlineStream(httpcore.NetworkStream):
    """httpcore's socket stream, each read shortened to the deadline of its thread, if any, and
    allowed to return up to STREAM_READ_BYTES (h11 takes any amount it is fed).

    A TLS socket returns at most one record (16 KiB, often less) per read, however much is
    asked, and every read pays the whole stack above it (httpcore, h11, httpx, crev). So once a
    read has waited for data, the stream takes what the socket already holds without waiting
    again, and passes it up as one read. crev's client uses no proxy, so the stream's socket
    is the connection itself (plain, or TLS over it), never a tunnel's outer layer.
    """

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        # A failure met while taking what was held, kept for the next read: the bytes read
        # before it go up first, as they would have one read at a time.
        self._failure: OSError | None = None
        # Whether taking what was held met the end of the stream: over TLS, a close_notify
        # read that way leaves nothing in the socket to poll, yet the connection is over.
        self._ended = False
        self._poll: select.poll | None = None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise httpcore.ReadError(failure)
        at = getattr(_deadline, "at", None)
        if at is not None:
            remaining = at - time.monotonic()
            if remaining <= 0:
                raise httpcore.ReadTimeout("the upstream's answer took too long")
            timeout = remaining if timeout is None else min(timeout, remaining)
        limit = max(max_bytes, STREAM_READ_BYTES)
        first = self._stream.read(limit, timeout)
        if not first or len(first) >= limit:
            return first
        return self._held(first, limit)

    def _held(self, first: bytes, limit: int) -> bytes:
        """`first` and whatever the socket holds already, up to `limit` bytes in all."""
        sock = self._stream.get_extra_info("socket")
        if not isinstance(sock, socket.socket) or not self._holds_more(sock):
            return first  # most small answers: one poll, and the socket left as it is
        chunks = [first]
        size = len(first)
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            while size < limit:
                chunk = sock.recv(limit - size)
                if not chunk:
                    self._ended = True
                    break  # the end of the stream; the next read sees it again
                chunks.append(chunk)
                size += len(chunk)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # nothing more held yet
        except OSError as error:
            self._failure = error
        finally:
            sock.settimeout(timeout)
        return first if len(chunks) == 1 else b"".join(chunks)

    def _holds_more(self, sock: socket.socket) -> bool:
        """Whether the socket has bytes to read now (over TLS, perhaps only part of a record,
        which a read without waiting then leaves)."""
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        return bool(self._poll.poll(0))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks this of every idle connection in the pool before each request (an
            # idle connection that is readable was closed by the upstream); the stream's own
            # poll answers it as httpcore's would, without a new poll object each time.
            if self._ended:
                return True
            sock = self._stream.get_extra_info("socket")
            if isinstance(sock, socket.socket) and sock.fileno() != -1:
                return self._holds_more(sock)
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _DeadlineStream(super().connect_tcp(*args, **kwargs))


class _Transport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose streams keep the deadline. httpx 0.28
    takes no network backend of its own, so the pool is built here rather than by
    `HTTPTransport.__init__`, which would build one without it (and an SSL context) for
    nothing. Without a context, the pool is for http origins only."""

    def __init__(self, limits: httpx.Limits, context: ssl.SSLContext | None = None) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(),
        )


# Where Linux distributions keep their CA bundle. A Python built on one distribution and run on
# another (as serverless runtimes do) may find no CA where its OpenSSL was told to look.
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


def tls_context() -> ssl.SSLContext:
    """The system's CA store (as `SSL_CERT_FILE` and `SSL_CERT_DIR` choose it, for any OpenSSL
    client), or the distribution's bundle when the runtime's OpenSSL finds none."""
    context = ssl.create_default_context()
    if not context.cert_store_stats()["x509_ca"]:
        bundle = next((path for path in CA_BUNDLES if os.path.isfile(path)), None)
        if bundle is not None:
            context.load_verify_locations(cafile=bundle)
    return context


class _Closable(Protocol):
    def close(self) -> None: ...


class MadeOnFirstUse[Made: _Closable]:
    """A value made by `make` when it is first asked for, once whichever threads ask; `reset`
    closes it, and the next use makes it anew (tests do, when they change the CA store)."""

    def __init__(self, make: Callable[[], Made]) -> None:
        self._make = make
        self._made: Made | None = None
        self._lock = threading.Lock()

    def get(self) -> Made:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    self._made = self._make()
                made = self._made
        return made

    def reset(self) -> None:
        with self._lock:
            made, self._made = self._made, None
        if made is not None:
            made.close()


class _TLSTransport(httpx.BaseTransport):
    """The transport to https origins, made when one is first asked: loading the CA store is a
    cold start's largest cost after the imports, and an http upstream never needs it."""

    def __init__(self, limits: httpx.Limits, context: Callable[[], ssl.SSLContext]) -> None:
        self._transport = MadeOnFirstUse(lambda: _Transport(limits, context()))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.get().handle_request(request)

    def close(self) -> None:
        self._transport.reset()


class _UpstreamClient(httpx.Client):
    """httpx's client as crev sends with it: `send` hands the request to the transport of its
    scheme, and returns its answer as the transport gives it.

    What `httpx.Client.send` does around that is for clients that follow redirects, run auth
    flows and keep cookies, and crev does none of them: it tried each answer as a redirect to
    build (for a blob's redirect, the request that would follow it), kept every cookie an
    upstream set in the client's jar for as long as the process lives (though never sent them
    on), and cost about a tenth of a millisecond of CPU per request (bench/README.md)."""

    def __init__(self, limits: httpx.Limits, context: Callable[[], ssl.SSLContext]) -> None:
        self._plain = _Transport(limits)
        self._tls = _TLSTransport(limits, context)
        super().__init__(
            transport=self._plain,
            mounts={"https://": self._tls},
            follow_redirects=False,
            # No proxy, netrc or CA settings from the environment beyond OpenSSL's own.
            trust_env=False,
        )

    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: object = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: object = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        if auth not in (httpx.USE_CLIENT_DEFAULT, None) or follow_redirects not in (
            httpx.USE_CLIENT_DEFAULT,
            False,
        ):
            raise ValueError("crev's upstream client follows no redirect and runs no auth flow")
        if self.is_closed:
            raise RuntimeError("the upstream client is closed")
        transport = self._tls if request.url.scheme == "https" else self._plain
        response = transport.handle_request(request)
        response.request = request
        if not stream:
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return response


def new_client(context: Callable[[], ssl.SSLContext] = tls_context) -> httpx.Client:
    """An httpx client as crev sends upstream with: a pool of kept-alive connections under one
    deadline, the TLS side made when an https origin is first asked, and nothing from the
    environment. `context` makes the TLS side's trust (the system's CA store unless given)."""
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_IDLE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    return _UpstreamClient(limits, context)
