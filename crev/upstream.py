"""Forwarding to upstream registries and token realms over pooled `http.client` connections.

Connections live as long as the process, so a warm serverless instance reuses them. Redirects
are never followed: they go back to the client, whose credentials must not travel.

Why the standard library's client and not httpx: measured on the benchmark (bench/README.md),
httpx with its httpcore and h11 layers cost about 0.55 ms more CPU per request, streamed blobs
at 0.41x of a direct pull against 0.98x here (h11 copies every 64 KiB read several times), and
added about 90 ms to every cold start; `http.client` is already imported by `http.server`.
"""

from __future__ import annotations

import http.client
import io
import os
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import RegistryError, upstream_unavailable
from .messages import Headers
from .request_head import HeadError, check_framing, read_fields

CHUNK_SIZE = 64 * 1024
# One socket read per chunk of a streamed body; large reads are what keep a relay near the
# speed of a direct pull.
STREAM_READ_BYTES = 1024 * 1024
# How long crev waits to drain a small unneeded body before giving up on reusing its connection.
RELEASE_SECONDS = 2.0
CONNECT_SECONDS = 10.0
# Idle connections older than this are closed rather than reused; registries keep theirs open
# for a minute or more, and a connection the upstream closed meanwhile is noticed before use.
KEEPALIVE_SECONDS = 30.0
MAX_IDLE_PER_ORIGIN = 32
MAX_STATUS_LINE = 1024


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> tuple[Origin, str]:
        """The origin of an absolute http(s) URL, and the request target to ask it for."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port), target

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


class _DeadlineReads(io.RawIOBase):
    """The socket as a response reads it. With a deadline set, every read ends by it, so an
    upstream that drips a byte at a time cannot stretch a per-read timeout into forever."""

    def __init__(self, sock: socket.socket, read_timeout: float) -> None:
        self._sock = sock
        # Through makefile, so the socket stays open while this reads, as http.client expects.
        self._raw = sock.makefile("rb", buffering=0)
        self.read_timeout = read_timeout
        self.deadline: float | None = None
        self._applied = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        timeout = self.read_timeout
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the upstream's answer took too long")
            timeout = min(timeout, remaining)
        if timeout != self._applied:
            self._sock.settimeout(timeout)
            self._applied = timeout
        return self._raw.readinto(buffer) or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _BufferedReads:
    """Stands in for the socket when http.client opens its reader, so the response reads
    through `_DeadlineReads` without a second reader being made and thrown away."""

    def __init__(self, reads: _DeadlineReads) -> None:
        self._reads = reads

    def makefile(self, mode: str) -> io.BufferedReader:
        self.reader = io.BufferedReader(self._reads, CHUNK_SIZE)
        return self.reader


class MalformedAnswer(http.client.HTTPException):
    """An upstream's head that could be read two ways (or not at all)."""


class _Response(http.client.HTTPResponse):
    """http.client's response, its head read by crev's strict reader (see `begin`); its body
    reading (lengths, chunked framing) is http.client's own."""

    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str = ""
    ) -> None:
        self.reads = _DeadlineReads(sock, sock.gettimeout() or CONNECT_SECONDS)
        source = _BufferedReads(self.reads)
        super().__init__(source, debuglevel, method, url)  # type: ignore[arg-type]
        # Bodies of announced length are read straight from here into reused buffers.
        self.reader = source.reader
        self.request_method = method
        self.fields = Headers()

    def begin(self) -> None:
        """Read the status line and headers, and decide the body's framing as http.client
        does. The `email` package http.client parses headers with was a sixth of crev's CPU
        while relaying a pull, and took folded lines and lines without a colon in silence."""
        if self.headers is not None:
            return
        # The head as a whole arrives within one timeout, counted once the request (and any
        # body being pushed, however long) has been sent.
        with _ReadsWithin(self.reads, self.reads.read_timeout):
            version, status, reason = _read_status_line(self.reader)
            while 100 <= status < 200 and status != 101:
                read_fields(self.reader)  # an interim answer (100 Continue, 103 Early Hints)
                version, status, reason = _read_status_line(self.reader)
            try:
                fields = read_fields(self.reader)
                check_framing(fields)
            except HeadError as error:
                raise MalformedAnswer(str(error)) from None
        message = http.client.HTTPMessage()
        for name, value in fields:
            message[name] = value
        self.fields = fields
        self.headers = self.msg = message
        self.version, self.status, self.reason = version, status, reason
        self.chunked = "transfer-encoding" in fields
        self.chunk_left = None
        length = fields.get("content-length")
        self.length = int(length) if length is not None and not self.chunked else None
        if status in (204, 304) or status < 200 or self.request_method == "HEAD":
            self.length = 0
        options = {option.strip().lower() for option in (fields.get("connection") or "").split(",")}
        self.will_close = "close" in options if version == 11 else "keep-alive" not in options
        if not self.chunked and self.length is None:
            self.will_close = True


def _read_status_line(stream: io.BufferedReader) -> tuple[int, int, str]:
    line = stream.readline(MAX_STATUS_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected("the upstream closed the connection without answering")
    text = line.decode("latin-1").rstrip("\r\n")
    version, _, rest = text.partition(" ")
    status, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(status) != 3 or not status.isdigit():
        raise http.client.BadStatusLine(text[:80])
    return (11 if version == "HTTP/1.1" else 10), int(status), reason.strip()


class _Connection(http.client.HTTPConnection):
    response_class = _Response


class _TLSConnection(http.client.HTTPSConnection):
    response_class = _Response


_tls_context: ssl.SSLContext | None = None

# Where Linux distributions keep their CA bundle. A Python built on one distribution and run on
# another (as serverless runtimes do) may find no CA where its OpenSSL was told to look.
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS
)


def _tls() -> ssl.SSLContext:
    # Made on first use: loading the CA store costs cold-start time a plain-http upstream
    # never needs. `SSL_CERT_FILE` and `SSL_CERT_DIR` choose the store, as for any OpenSSL client.
    global _tls_context
    if _tls_context is None:
        context = ssl.create_default_context()
        if not context.cert_store_stats()["x509_ca"]:
            bundle = next((path for path in CA_BUNDLES if os.path.isfile(path)), None)
            if bundle is not None:
                context.load_verify_locations(cafile=bundle)
        _tls_context = context
    return _tls_context


def _open(origin: Origin, timeout: float) -> http.client.HTTPConnection:
    connect_timeout = min(CONNECT_SECONDS, timeout)
    connection: http.client.HTTPConnection
    if origin.scheme == "https":
        connection = _TLSConnection(
            origin.host, origin.port, timeout=connect_timeout, context=_tls()
        )
    else:
        connection = _Connection(origin.host, origin.port, timeout=connect_timeout)
    connection.connect()
    return connection


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed (or spoken on) by the
    upstream, and a request sent on it would fail or be misread."""
    sock = connection.sock
    if sock is None:
        return True
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    return bool(poll.poll(0))


class _Pool:
    """Idle keep-alive connections per origin."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()

    def take(self, origin: Origin) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                if not idle:
                    return None
                since, connection = idle.pop()
            # Checked outside the lock: other requests need not wait on this one's syscall.
            if now - since < KEEPALIVE_SECONDS and not _closed_by_peer(connection):
                return connection
            connection.close()

    def give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append((time.monotonic(), connection))
                return
        connection.close()


_pool = _Pool()


class _BufferPool:
    """Read buffers kept for reuse: fresh memory costs a page fault for every 4 KiB the
    socket writes into, about a tenth of crev's CPU while it streams blobs."""

    def __init__(self, size: int, keep: int) -> None:
        self._size = size
        self._keep = keep
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def take(self) -> memoryview:
        with self._lock:
            if self._free:
                return self._free.pop()
        return memoryview(bytearray(self._size))

    def give_back(self, buffer: memoryview) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buffer)


_buffers = _BufferPool(STREAM_READ_BYTES, keep=8)


class UpstreamBodyError(Exception):
    """The upstream failed after its headers were sent: the client's stream must be cut."""


class UpstreamResponse:
    """An upstream's answer with its body unread. Its connection goes back to the pool once
    the body has been read to its end; closing it earlier closes the connection."""

    def __init__(
        self,
        raw: _Response,
        connection: http.client.HTTPConnection,
        origin: Origin,
        method: str,
        headers: Headers,
    ) -> None:
        self._raw = raw
        self._connection: http.client.HTTPConnection | None = connection
        self._origin = origin
        self.method = method
        self.status = raw.status
        self.headers = headers
        self._complete = False

    def read_chunks(self, size: int = STREAM_READ_BYTES) -> Iterator[bytes | memoryview]:
        """The body as the upstream sends it (content coding kept, chunked framing removed),
        one socket read at a time. A chunk may be a view of a reused buffer: it is valid
        until the next one is asked for."""
        raw = self._raw
        if raw.chunked or raw.length is None:
            # http.client undoes the chunked framing, or reads until the upstream closes.
            while chunk := raw.read1(size):
                yield chunk
            self._complete = raw.isclosed()
            return
        remaining = raw.length
        if not remaining:
            self._complete = True
            return
        buffer = _buffers.take()
        try:
            while remaining:
                count = raw.reader.readinto1(buffer[: min(size, remaining)])
                if not count:
                    raise http.client.IncompleteRead(b"", remaining)
                remaining -= count
                yield buffer[:count]
        finally:
            _buffers.give_back(buffer)
        self._complete = True

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        reusable = self._complete and not self._raw.will_close and connection.sock is not None
        self._raw.close()
        if reusable:
            _pool.give_back(self._origin, connection)
        else:
            connection.close()

    def read_within(self, seconds: float) -> _ReadsWithin:
        return _ReadsWithin(self._raw.reads, seconds)


class _ReadsWithin:
    """Every socket read of a response in this block must finish by one deadline."""

    def __init__(self, reads: _DeadlineReads, seconds: float) -> None:
        self._reads = reads
        self._seconds = seconds

    def __enter__(self) -> None:
        self._reads.deadline = time.monotonic() + self._seconds

    def __exit__(self, *exc: object) -> None:
        self._reads.deadline = None


# Failures that mean a reused connection had been closed by the upstream while idle: the
# request never reached it, and can be sent again on a fresh connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
# crev decides these itself for every request.
_OWN_HEADERS = frozenset({"host", "user-agent", "transfer-encoding"})


def send(
    method: str,
    url: str,
    headers: Headers,
    timeout: float,
    content: bytes | Iterator[bytes] | None = None,
) -> UpstreamResponse:
    """Send a request upstream and return the response with its body still unread.

    `timeout` bounds connecting (at most 10 s), each write and each body read, and the wait
    for the response's headers as a whole.
    """
    try:
        origin, target = Origin.of(url)
    except ValueError as error:
        raise upstream_unavailable(f"cannot ask the upstream: {error}") from None
    replayable = not isinstance(content, Iterator)
    body = content if replayable else _client_body(content)  # type: ignore[arg-type]
    while True:
        connection = _pool.take(origin)
        reused = connection is not None
        try:
            if connection is None:
                connection = _open(origin, timeout)
            raw = _exchange(connection, method, target, origin, headers, timeout, body)
            return UpstreamResponse(raw, connection, origin, method, raw.fields)
        except _STALE:
            _discard(connection)
            if reused and replayable:
                continue
            raise upstream_unavailable(
                f"upstream {origin.netloc} closed the connection without answering"
            ) from None
        except TimeoutError:
            _discard(connection)
            raise upstream_unavailable(
                f"upstream {origin.netloc} did not answer within {timeout:g} s", status=504
            ) from None
        except RegistryError:
            _discard(connection)
            raise
        except MalformedAnswer as error:
            _discard(connection)
            raise upstream_unavailable(
                f"upstream {origin.netloc} sent a malformed header: {error}"
            ) from None
        except OSError as error:
            _discard(connection)
            raise upstream_unavailable(
                f"upstream {origin.netloc} is unreachable: {_describe(error)}"
            ) from None
        except (http.client.HTTPException, ValueError) as error:
            _discard(connection)
            raise upstream_unavailable(
                f"upstream {origin.netloc} sent a broken answer: {_describe(error)}"
            ) from None


def _discard(connection: http.client.HTTPConnection | None) -> None:
    if connection is not None:
        connection.close()


def _client_body(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A body read from the client as it is sent on: a client that stops sending is the
    client's failure, not the upstream's."""
    try:
        yield from chunks
    except OSError as error:
        raise RegistryError(
            408, "SIZE_INVALID", f"the request body stopped arriving: {_describe(error)}"
        ) from None


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    origin: Origin,
    headers: Headers,
    timeout: float,
    content: bytes | Iterator[bytes] | None,
) -> _Response:
    assert connection.sock is not None
    connection.sock.settimeout(timeout)
    # Every header is crev's choice: http.client adds none behind its back.
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", origin.netloc)
    connection.putheader("User-Agent", "crev")
    own = _OWN_HEADERS | {"content-length"} if isinstance(content, bytes) else _OWN_HEADERS
    for name, value in headers:
        if name.lower() not in own:
            connection.putheader(name, value)
    if "accept-encoding" not in headers:
        # Without it any coding is acceptable; crev passes bodies on as they come, and reads
        # tag lists and tokens itself.
        connection.putheader("Accept-Encoding", "identity")
    chunked = False
    if isinstance(content, bytes):
        connection.putheader("Content-Length", str(len(content)))
    elif content is not None and "content-length" not in headers:
        connection.putheader("Transfer-Encoding", "chunked")
        chunked = True
    connection.endheaders(content, encode_chunked=chunked)
    raw = connection.getresponse()
    assert isinstance(raw, _Response)
    return raw


def iter_body(response: UpstreamResponse) -> Iterator[bytes | memoryview]:
    """The raw (still encoded) body as the socket delivers it; a failure midway is
    UpstreamBodyError."""
    try:
        yield from response.read_chunks()
    except (OSError, http.client.HTTPException) as error:
        raise UpstreamBodyError(f"upstream body failed: {_describe(error)}") from None
    finally:
        response.close()


def release(response: UpstreamResponse, limit: int = CHUNK_SIZE) -> None:
    """Close a response whose body crev does not need, keeping its connection for reuse.

    A small body of announced length (a 401's, a 404's) is cheaper to read than a new
    connection is to open. Anything else, or a body that does not arrive promptly, just
    closes the connection.
    """
    length = response.headers.get("content-length", "") or ""
    try:
        if response.method == "HEAD" or (length.isdigit() and int(length) <= limit):
            with response.read_within(RELEASE_SECONDS):
                for _ in response.read_chunks(CHUNK_SIZE):
                    pass
    except (OSError, http.client.HTTPException):
        pass
    finally:
        response.close()


def read_body(response: UpstreamResponse, limit: int, timeout: float) -> bytes:
    """A small body crev reads itself (tag lists, tokens), whole, within `timeout`, with its
    content coding undone (clients ask realms for gzip, and crev passes that on); refused past
    `limit` bytes, before or after decoding."""
    coding = (response.headers.get("content-encoding") or "identity").strip().lower()
    chunks: list[bytes] = []
    size = 0
    try:
        if coding not in _DECODABLE:
            raise upstream_unavailable(
                f"upstream answer is in a coding crev cannot read: {coding!r}"
            )
        with response.read_within(timeout):
            for chunk in response.read_chunks(CHUNK_SIZE):
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(bytes(chunk))
    except TimeoutError:
        raise upstream_unavailable("upstream stalled while sending its answer", 504) from None
    except (OSError, http.client.HTTPException) as error:
        raise upstream_unavailable(f"upstream answer failed: {_describe(error)}") from None
    finally:
        response.close()
    body = b"".join(chunks)
    return body if coding == "identity" else _decoded(body, limit)


# gzip, and zlib-wrapped deflate: what registries and token realms send when asked.
_DECODABLE = frozenset({"identity", "gzip", "x-gzip", "deflate"})


def _decoded(body: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)  # either header, detected
    try:
        decoded = decoder.decompress(body, limit + 1)
    except zlib.error as error:
        raise upstream_unavailable(f"upstream answer is not validly compressed: {error}") from None
    if len(decoded) > limit:
        raise _too_large(limit)
    if not decoder.eof:
        raise upstream_unavailable("upstream answer ends inside its compressed data")
    return decoded


def _too_large(limit: int) -> RegistryError:
    return upstream_unavailable(f"upstream answer is over {limit} bytes")


def _describe(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
