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

_client: httpx.Client | None = None
_client_lock = threading.Lock()


def shared_client() -> httpx.Client:
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = httpx.Client(
                    follow_redirects=False,
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
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
    """The raw (still encoded) body in bounded chunks; a failure midway is UpstreamBodyError."""
    try:
        yield from response.iter_raw(CHUNK_SIZE)
    except httpx.HTTPError as error:
        raise UpstreamBodyError(f"upstream body failed: {_describe(error)}") from None
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
