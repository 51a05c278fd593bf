"""Forwarding to upstream registries and token realms, through one `httpx.Client` per process.

The client lives as long as the process, so a warm serverless instance reuses its keep-alive
connections. Redirects are never followed: they go back to the client, whose credentials must
not travel. httpx (with httpcore and h11 beneath it) frames every request and reads every
answer; what crev adds is what httpx does not do for it: one deadline over a whole answer head
(a read timeout alone lets an upstream that drips a byte at a time hold a request forever),
a single retry of an idempotent request that met a connection the upstream had just closed,
strict reading of the bodies crev reads itself, and one vocabulary of failures (502/504
registry errors naming the upstream).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

import h11
import httpcore
import httpx

from .errors import IncompleteBodyError, UpstreamCutError, UpstreamError, UpstreamTimeoutError
from .messages import Headers, has_control_characters
from .urls import URL

CHUNK_SIZE = 64 * 1024
# The most one read of an upstream's socket returns. httpcore asks for 64 KiB; relaying a blob,
# larger reads spend less CPU per byte in httpcore and h11, but each stream holds several copies
# of a read at once (h11's buffer, its event, httpx's chunk), so with many streams at once the
# size bounds crev's memory (bench/README.md has the figures for both).
STREAM_READ_BYTES = 256 * 1024
CONNECT_SECONDS = 10.0
# How long crev waits to drain a small unneeded body before giving up on reusing its connection.
RELEASE_SECONDS = 2.0
# Idle connections older than this are closed rather than reused; registries keep theirs open
# for a minute or more, and httpcore notices one the upstream closed meanwhile before use.
KEEPALIVE_SECONDS = 30.0
MAX_CONNECTIONS = 256
MAX_IDLE_CONNECTIONS = 64
# Methods whose request may be sent again when a reused connection turns out closed before any
# answer (RFC 9110 9.2.2); a proxy never replays the others by itself (RFC 9112 9.3.1).
_RETRYABLE_METHODS = frozenset({"GET", "HEAD"})


# --------------------------------------------------------------------------- the head deadline

_deadline = threading.local()


class _Deadline:
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
        if not isinstance(sock, socket.socket):
            return first
        chunks = [first]
        size = len(first)
        timeout = sock.gettimeout()
        try:
            sock.settimeout(0.0)
            while size < limit:
                chunk = sock.recv(limit - size)
                if not chunk:
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


# --------------------------------------------------------------------------- the client

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

    def __init__(self, limits: httpx.Limits) -> None:
        self._transport = MadeOnFirstUse(lambda: _Transport(limits, tls_context()))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.get().handle_request(request)

    def close(self) -> None:
        self._transport.reset()


def _new_client() -> httpx.Client:
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_IDLE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    return httpx.Client(
        transport=_Transport(limits),
        mounts={"https://": _TLSTransport(limits)},
        follow_redirects=False,
        # No proxy, netrc or CA settings from the environment beyond OpenSSL's own, and no
        # cookie jar: one process serves every client, and a cookie kept from one answer
        # would go out with another client's request.
        trust_env=False,
    )


# The process's one httpx client, made on first use.
_client = MadeOnFirstUse(_new_client)


def reset_client() -> None:
    """Close every pooled connection and build the client anew on next use."""
    _client.reset()


# --------------------------------------------------------------------------- requests


class UpstreamRequest(NamedTuple):
    """A request as crev sends it upstream: every header is crev's choice (httpx adds only
    `Host` and the body's framing), and a body is bytes or a stream read from the client."""

    method: str
    url: URL
    headers: Headers
    body: bytes | Iterable[bytes] | None = None

    @property
    def streams_body(self) -> bool:
        return self.body is not None and not isinstance(self.body, bytes)


def send(request: UpstreamRequest, timeout: float) -> UpstreamResponse:
    """Send a request upstream and return the answer with its body still unread.

    `timeout` bounds connecting (at most 10 s), waiting for a pooled connection, each write and
    each body read, and the wait for the answer's head as a whole.
    """
    url = str(request.url)
    try:
        sent = httpx.Request(
            request.method,
            url,
            # As bytes: a client's header may hold obs-text, which httpx would not encode.
            headers=[
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers
                if name.lower() not in _OWN
            ],
            content=_streamed_body(request.body) if request.streams_body else request.body,
            extensions={"timeout": _timeouts(timeout)},
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as error:
        raise UpstreamError(f"cannot ask the upstream {url!r}: {error}") from None
    if sent.url.scheme not in ("http", "https"):
        raise UpstreamError(f"cannot ask the upstream {url!r}: not an http(s) URL")
    sent.headers["User-Agent"] = "crev"
    if "accept-encoding" not in sent.headers:
        # Without one any coding is acceptable; crev passes bodies on as they come.
        sent.headers["Accept-Encoding"] = "identity"
    retry = request.method in _RETRYABLE_METHODS and request.body is None
    while True:
        try:
            with _Deadline(timeout, started=not request.streams_body):
                response = _client.get().send(sent, stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
            if retry and _closed_before_answering(error):
                retry = False
                continue
            raise _failure(error, sent, timeout) from None
        except (httpx.HTTPError, httpx.StreamError) as error:
            raise _failure(error, sent, timeout) from None
        return _checked(UpstreamResponse(response, request.method), response, sent)


def _streamed_body(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A body read from the client as it is sent on. The wait for the answer's head starts
    once it has all gone, however long a push takes; a client that stops sending is the
    client's failure, not the upstream's."""
    try:
        yield from chunks
    except OSError as error:
        raise IncompleteBodyError(f"the request body stopped arriving: {describe(error)}") from None
    _Deadline.start()


# crev decides these itself for every request.
_OWN = frozenset({"host", "user-agent", "transfer-encoding", "connection"})


def _timeouts(seconds: float) -> dict[str, float]:
    return {
        "connect": min(CONNECT_SECONDS, seconds),
        "read": seconds,
        "write": seconds,
        "pool": seconds,
    }


def _closed_before_answering(error: httpx.TransportError) -> bool:
    """Whether the connection ended before any answer: what a pooled connection the upstream
    closed a moment before it was reused looks like (a reset, or a close before the status
    line)."""
    return not _is_malformed(error)


def _is_malformed(error: httpx.TransportError) -> bool:
    """Whether h11 refused what the upstream sent: httpcore raises its protocol error while
    handling h11's, except for a connection that closed before the status line, where there is
    no h11 error behind it."""
    return isinstance(error, httpx.RemoteProtocolError) and isinstance(
        getattr(error.__cause__, "__context__", None), h11.RemoteProtocolError
    )


def _checked(
    response: UpstreamResponse, raw: httpx.Response, sent: httpx.Request
) -> UpstreamResponse:
    """Refuse an answer whose head a host behind crev could read another way. h11 lets a
    Transfer-Encoding override a Content-Length (RFC 9112 6.3 asks a proxy to treat that as an
    error or drop the length) and takes control characters in values; crev forwards neither."""
    fault = None
    if "transfer-encoding" in response.headers and "content-length" in response.headers:
        fault = "both Content-Length and Transfer-Encoding"
    elif any(has_control_characters(value) for _, value in raw.headers.raw):
        fault = "control character in a header"
    if fault is None:
        return response
    response.close()
    host = sent.url.netloc.decode("ascii", "replace")
    raise UpstreamError(f"upstream {host} sent a malformed answer: {fault}")


def _failure(error: Exception, sent: httpx.Request, timeout: float) -> UpstreamError:
    """The error for an upstream that could not answer, in words that name it."""
    host = sent.url.netloc.decode("ascii", "replace")
    if isinstance(error, httpx.TimeoutException):
        return UpstreamTimeoutError(f"upstream {host} did not answer within {timeout:g} s")
    if isinstance(error, httpx.RemoteProtocolError) and _is_malformed(error):
        return UpstreamError(f"upstream {host} sent a malformed answer: {error}")
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return UpstreamError(
            f"upstream {host} closed the connection without answering ({describe(error)})"
        )
    if isinstance(error, httpx.ConnectError):
        return UpstreamError(f"upstream {host} is unreachable: {describe(error)}")
    return UpstreamError(f"upstream {host} failed: {describe(error)}")


# --------------------------------------------------------------------------- answers


class UpstreamResponse:
    """An upstream's answer with its body unread. Its connection goes back to the pool once
    the body has been read to its end; closing it earlier closes the connection."""

    __slots__ = ("_response", "headers", "method", "status")

    def __init__(self, response: httpx.Response, method: str) -> None:
        self._response = response
        self.method = method
        self.status = response.status_code
        self.headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in response.headers.raw
        )

    def stream(self) -> Iterator[bytes]:
        """The body as the upstream sends it (content coding kept, chunked framing removed),
        one socket read at a time, for passing on; a failure midway is UpstreamCutError."""
        try:
            yield from self._response.iter_raw()
        except (httpx.HTTPError, httpx.StreamError) as error:
            raise UpstreamCutError(f"upstream body failed: {describe(error)}") from None
        finally:
            self.close()

    def read(self, limit: int, timeout: float) -> bytes:
        """A small body crev reads itself (tag lists, tokens, errors), whole, within `timeout`,
        with its content coding undone (clients ask realms for gzip, and crev passes that on);
        refused past `limit` bytes, before or after decoding."""
        coding = (self.headers.get("content-encoding") or "identity").strip().lower()
        chunks: list[bytes] = []
        size = 0
        try:
            if coding not in _DECODABLE:
                raise UpstreamError(f"upstream answer is in a coding crev cannot read: {coding!r}")
            with _Deadline(timeout):
                for chunk in self._response.iter_raw():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
        except httpx.TimeoutException:
            raise UpstreamTimeoutError("upstream stalled while sending its answer") from None
        except (httpx.HTTPError, httpx.StreamError) as error:
            raise UpstreamError(f"upstream answer failed: {describe(error)}") from None
        finally:
            self.close()
        body = b"".join(chunks)
        return body if coding == "identity" else _decoded(body, limit)

    @property
    def has_body(self) -> bool:
        """Whether the answer can carry a body: never to HEAD, nor with a 1xx, 204 or 304,
        whatever its headers say (RFC 9112 6.3)."""
        return self.method != "HEAD" and self.status >= 200 and self.status not in (204, 304)

    def release(self, limit: int = CHUNK_SIZE) -> None:
        """Close an answer whose body crev does not need, keeping its connection for reuse.

        An answer that has no body, or a small one of announced length (a 401's, a 404's), is
        cheaper to read to its end than a new connection is to open. Anything else, or a body
        that does not arrive promptly, just closes the connection.
        """
        length = self.headers.get("content-length", "") or ""
        try:
            if not self.has_body or (length.isdigit() and int(length) <= limit):
                with _Deadline(RELEASE_SECONDS):
                    for _ in self._response.iter_raw():
                        pass
        except (httpx.HTTPError, httpx.StreamError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()


# gzip, and zlib-wrapped deflate: what registries and token realms send when asked. Decoded
# here rather than by httpx, which takes a gzip stream cut before its checksum as whole.
_DECODABLE = frozenset({"identity", "gzip", "x-gzip", "deflate"})


def _decoded(body: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)  # either header, detected
    try:
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error as error:
        raise UpstreamError(f"upstream answer is not validly compressed: {error}") from None
    if len(decoded) > limit:
        raise _too_large(limit)
    if not decoder.eof:
        raise UpstreamError("upstream answer ends inside its compressed data")
    return decoded


def _too_large(limit: int) -> UpstreamError:
    return UpstreamError(f"upstream answer is over {limit} bytes")


def describe(error: BaseException) -> str:
    """An exception as a client may read it: its type and what it says, nothing more."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
