"""An upstream's answer as crev holds it: its head read, its body streamed on, read whole, or
released so its connection can be reused.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx

from ..errors import UpstreamCutError, UpstreamError, UpstreamTimeoutError, describe
from ..messages import Headers
from .transport import Deadline

# The largest body of announced length `release` reads to its end to keep the connection: a
# 401's or a 404's, not a blob.
MAX_DRAINED_BYTES = 64 * 1024
# How long crev waits to drain a small unneeded body before giving up on reusing its connection.
RELEASE_SECONDS = 2.0


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
            with Deadline(timeout):
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

    def held(self, limit: int, timeout: float) -> HeldAnswer:
        """The whole answer, held: its body read as `read` reads it (content coding undone, at
        most `limit` bytes), its headers saying so."""
        body = self.read(limit, timeout)
        headers = self.headers.copy()
        headers.remove("Content-Encoding")
        headers.set("Content-Length", str(len(body)))
        return HeldAnswer(self.status, headers, body, self.method, from_memory=False)

    @property
    def has_body(self) -> bool:
        """Whether the answer can carry a body: never to HEAD, nor with a 1xx, 204 or 304,
        whatever its headers say (RFC 9112 6.3)."""
        return self.method != "HEAD" and self.status >= 200 and self.status not in (204, 304)

    def release(self, limit: int = MAX_DRAINED_BYTES) -> None:
        """Close an answer whose body crev does not need, keeping its connection for reuse.

        An answer that has no body, or a small one of announced length (a 401's, a 404's), is
        cheaper to read to its end than a new connection is to open. Anything else, or a body
        that does not arrive promptly, just closes the connection.
        """
        length = self.headers.get("content-length", "") or ""
        try:
            if not self.has_body or (length.isdigit() and int(length) <= limit):
                with Deadline(RELEASE_SECONDS):
                    for _ in self._response.iter_raw():
                        pass
        except (httpx.HTTPError, httpx.StreamError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()


class HeldAnswer:
    """An upstream's answer whose body crev holds whole (a ping's, an anonymous token's): read
    for what it teaches, or recalled from what was learned, the upstream not asked
    (`from_memory`). Read, streamed and released as an `UpstreamResponse` is, with no connection
    behind it."""

    __slots__ = ("body", "from_memory", "headers", "method", "status")

    def __init__(
        self, status: int, headers: Headers, body: bytes, method: str, *, from_memory: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.method = method
        self.from_memory = from_memory

    @property
    def has_body(self) -> bool:
        return self.method != "HEAD"

    def read(self, limit: int, timeout: float) -> bytes:
        return self.body

    def stream(self) -> Iterator[bytes]:
        return iter([self.body])

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


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
