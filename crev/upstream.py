"""Forwarding to the upstream registry and its token realm over one pooled `httpx` client.

The client lives as long as the process, so a warm serverless instance reuses its connections.
Redirects are never followed: they go back to the client, whose credentials must not travel.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .errors import RegistryError, upstream_unavailable
from .messages import Headers

CHUNK_SIZE = 64 * 1024
# How long crev waits to drain a small unneeded body before giving up on reusing its connection.
RELEASE_SECONDS = 2.0

# httpx logs every request URL at INFO; token URLs carry accounts and scopes, which stay private.
logging.getLogger("httpx").setLevel(logging.WARNING)

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

_client: httpx.Client | None = None
_client_lock = threading.Lock()


_deadline = threading.local()


@contextlib.contextmanager
def _reads_within(seconds: float) -> Iterator[None]:
    """Every socket read in this block must finish by one deadline, so an upstream that
    drips a byte at a time cannot stretch a per-read timeout into forever."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = previous


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = getattr(_deadline, "at", None)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise httpcore.ReadTimeout("the upstream's answer took too long")
            timeout = remaining if timeout is None else min(timeout, remaining)
        return self._stream.read(max_bytes, timeout)

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


def _trace_header_deadline(timeout: float) -> Callable[[str, dict[str, Any]], None]:
    """A trace hook that bounds the wait for response headers as a whole, starting once the
    request (and any body being pushed, however long) has been sent."""

    def trace(event: str, info: dict[str, Any]) -> None:
        if event == "http11.receive_response_headers.started":
            _deadline.at = time.monotonic() + timeout
        elif event in (
            "http11.receive_response_headers.complete",
            "http11.receive_response_headers.failed",
        ):
            _deadline.at = None

    return trace


class _LazyTLSTransport(httpx.BaseTransport):
    """Connection pools per scheme, the TLS one made on first use: loading the CA bundle costs
    tens of milliseconds of cold start that a plain-http upstream never needs."""

    def __init__(self) -> None:
        self._pools: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def _pool(self, scheme: str) -> httpx.HTTPTransport:
        pool = self._pools.get(scheme)
        if pool is None:
            with self._lock:
                pool = self._pools.get(scheme)
                if pool is None:
                    pool = self._pools[scheme] = _deadline_transport(tls=scheme == "https")
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool(request.url.scheme).handle_request(request)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


def _deadline_transport(*, tls: bool) -> httpx.HTTPTransport:
    # httpx takes no network backend, so its pool is replaced by one built alike whose
    # sockets honour the read deadline; everything else about the transport is httpx's own.
    transport = httpx.HTTPTransport(verify=False, limits=_LIMITS)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context() if tls else None,
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
        network_backend=_DeadlineBackend(),
    )
    return transport


def shared_client() -> httpx.Client:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client(
                    transport=_LazyTLSTransport(),
                    follow_redirects=False,
                    headers={"User-Agent": "crev"},
                )
    return _client


class UpstreamBodyError(Exception):
    """The upstream failed after its headers were sent: the client's stream must be cut."""


def send(
    method: str,
    url: str,
    headers: Headers,
    timeout: float,
    content: bytes | Iterator[bytes] | None = None,
) -> httpx.Response:
    """Send a request upstream and return the response with its body still unread."""
    host = urlsplit(url).netloc
    request = shared_client().build_request(
        method,
        url,
        headers=headers.items,
        content=content,
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        extensions={"trace": _trace_header_deadline(timeout)},
    )
    try:
        return shared_client().send(request, stream=True)
    except httpx.TimeoutException:
        raise upstream_unavailable(
            f"upstream {host} did not answer within {timeout:g} s", status=504
        ) from None
    except httpx.HTTPError as error:
        raise upstream_unavailable(f"upstream {host} is unreachable: {_describe(error)}") from None


def iter_body(response: httpx.Response) -> Iterator[bytes]:
    """The raw (still encoded) body as the socket delivers it (at most 64 KiB a read);
    a failure midway is UpstreamBodyError."""
    try:
        # No chunk size: httpx would otherwise copy every read into chunks of its own.
        yield from response.iter_raw()
    except httpx.HTTPError as error:
        raise UpstreamBodyError(f"upstream body failed: {_describe(error)}") from None
    finally:
        response.close()


def release(response: httpx.Response, limit: int = CHUNK_SIZE) -> None:
    """Close a response whose body crev does not need, keeping its connection for reuse.

    httpx drops a connection whose body was left unread; a small body of announced length (a
    HEAD's, a 401's) is cheaper to read than a new connection is to open. Anything else, or a
    body that does not arrive promptly, just closes the connection.
    """
    length = response.headers.get("content-length", "")
    try:
        if response.request.method == "HEAD" or (length.isdigit() and int(length) <= limit):
            with _reads_within(RELEASE_SECONDS):
                for _ in response.iter_raw():
                    pass
    except httpx.HTTPError:
        pass
    finally:
        response.close()


def response_headers(response: httpx.Response) -> Headers:
    """The upstream's headers byte for byte: latin-1 is how HTTP/1.1 carries them, and how
    crev's server writes them back, whatever bytes an upstream put there."""
    return Headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw
    )


def read_body(response: httpx.Response, limit: int, timeout: float) -> bytes:
    """A small decoded body (tag lists, tokens); refused past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        with _reads_within(timeout):
            for chunk in response.iter_bytes(CHUNK_SIZE):
                size += len(chunk)
                if size > limit:
                    raise RegistryError(
                        502, "UNAVAILABLE", f"upstream answer is over {limit} bytes"
                    )
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise upstream_unavailable("upstream stalled while sending its answer", 504) from None
    except httpx.HTTPError as error:
        raise upstream_unavailable(f"upstream answer failed: {_describe(error)}") from None
    finally:
        response.close()
    return b"".join(chunks)


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
