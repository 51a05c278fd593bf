"""Forwarding to the upstream registry and its token realm over one pooled `httpx` client.

The client lives as long as the process, so a warm serverless instance reuses its connections.
Redirects are never followed: they go back to the client, whose credentials must not travel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from .errors import RegistryError, upstream_unavailable
from .messages import Headers

CHUNK_SIZE = 64 * 1024

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

_client: httpx.Client | None = None
_client_lock = threading.Lock()


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
                    verify = scheme == "https"
                    pool = self._pools[scheme] = httpx.HTTPTransport(verify=verify, limits=_LIMITS)
        return pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool(request.url.scheme).handle_request(request)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


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

    httpx drops a connection whose body was left unread; an empty or small body (a HEAD, a
    401) is cheaper to read than a new connection is to open.
    """
    try:
        size = 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > limit:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()


def read_body(response: httpx.Response, limit: int) -> bytes:
    """A small decoded body (tag lists, tokens); refused past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes(CHUNK_SIZE):
            size += len(chunk)
            if size > limit:
                raise RegistryError(502, "UNAVAILABLE", f"upstream answer is over {limit} bytes")
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
