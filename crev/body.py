"""Request bodies, streamed in bounded chunks: by `Content-Length`, or de-chunked.

Vercel's runtime hands a handler class the raw `Transfer-Encoding: chunked` stream, so crev
de-chunks itself rather than relying on the server in front of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from .errors import RegistryError

CHUNK_SIZE = 64 * 1024
_MAX_CHUNK_LINE = 1024


class BodyError(RegistryError):
    """The client's body broke its framing or a size limit."""


def body_chunks(
    stream: BinaryIO, *, content_length: int | None, chunked: bool, limit: int | None
) -> Iterator[bytes]:
    """The request body in chunks of at most CHUNK_SIZE; refused past `limit` bytes."""
    if chunked:
        yield from _dechunked(stream, limit)
    elif content_length:
        if limit is not None and content_length > limit:
            raise _too_large(limit)
        yield from _exactly(stream, content_length)


def _exactly(stream: BinaryIO, length: int) -> Iterator[bytes]:
    remaining = length
    while remaining:
        chunk = stream.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise BodyError(400, "SIZE_INVALID", f"request body ended {remaining} bytes early")
        remaining -= len(chunk)
        yield chunk


def _dechunked(stream: BinaryIO, limit: int | None) -> Iterator[bytes]:
    total = 0
    while True:
        line = stream.readline(_MAX_CHUNK_LINE)
        if not line.endswith(b"\n"):
            raise BodyError(400, "SIZE_INVALID", "malformed chunked request body")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BodyError(400, "SIZE_INVALID", f"bad chunk size {size_text[:20]!r}") from None
        if size < 0:
            raise BodyError(400, "SIZE_INVALID", "bad chunk size")
        if size == 0:
            # Trailer fields, if any, then the blank line that ends the body.
            while stream.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                pass
            return
        total += size
        if limit is not None and total > limit:
            raise _too_large(limit)
        yield from _exactly(stream, size)
        if stream.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n"):
            raise BodyError(400, "SIZE_INVALID", "chunk not followed by CRLF")


def _too_large(limit: int) -> BodyError:
    return BodyError(
        413,
        "SIZE_INVALID",
        f"request body is over {limit} bytes, the most this deployment accepts in one request; "
        "upload blobs in chunks (PATCH with Content-Range) smaller than that",
    )
