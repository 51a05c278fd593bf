"""Requests and responses as crev's endpoints see them, independent of any server framework."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from .errors import Refusal, RegistryError
from .urls import Origin, is_valid_host

# What a header line may hold: tab, visible ASCII, space and obs-text (RFC 9110 5.5). h11 takes
# any byte but NUL and whitespace in a value; `bytes.translate` finds the rest fast.
_FIELD_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])


def has_control_characters(field: bytes) -> bool:
    return bool(field.translate(None, _FIELD_BYTES))


class Headers:
    """An ordered, case-insensitive multi-map; repeated headers (`Accept`, `Link`) are kept."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self.items:
            if key.lower() == lowered:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.items if key.lower() == lowered]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.items.append((name, value))

    def add(self, name: str, value: str) -> None:
        """One more `name` header, after any there are already."""
        self.items.append((name, value))

    def filtered(self, shown: Callable[[str, str], str | None]) -> Headers:
        """These headers, each value as `shown` gives it, and those it gives None for left out."""
        return Headers(
            (name, value) for name, old in self.items if (value := shown(name, old)) is not None
        )

    def copy(self) -> Headers:
        return Headers(self.items)

    def remove(self, name: str) -> None:
        lowered = name.lower()
        self.items = [(key, value) for key, value in self.items if key.lower() != lowered]


class Request:
    __slots__ = (
        "body",
        "chunked",
        "content_length",
        "headers",
        "method",
        "origin",
        "path",
        "query",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        origin: Origin,
        body: Callable[[], Iterator[bytes]] | None = None,
        content_length: int | None = None,
        chunked: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        # The vanity origin as the client addressed it, e.g. `https://acme.dev`.
        self.origin = origin
        # Reads the body as the client sends it (de-chunked), once.
        self.body = body
        self.content_length = content_length
        self.chunked = chunked

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def read_body(self, limit: int) -> bytes:
        """The whole (small) body, refused past `limit` bytes."""
        chunks = self.stream_body(limit)
        return b"".join(chunks) if chunks is not None else b""

    def stream_body(self, limit: int | None) -> Iterator[bytes] | None:
        """The body for forwarding, streamed; None when the request has none. A body announced
        larger than `limit` is refused here, before anything is sent upstream; a chunked one
        when it grows past it."""
        if self.body is None or not self.has_body:
            return None
        if limit is not None and self.content_length is not None and self.content_length > limit:
            raise body_too_large(limit)
        chunks = self.body()
        return (
            chunks if limit is None or self.content_length is not None else _within(chunks, limit)
        )


def _within(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise body_too_large(limit)
        yield chunk


def body_too_large(limit: int) -> RegistryError:
    return RegistryError(
        Refusal.BODY_TOO_LARGE,
        f"request body is over {limit} bytes, the most this deployment accepts in one request; "
        "upload blobs in chunks (PATCH with Content-Range) smaller than that",
    )


def _nothing_to_close() -> None:
    pass


class FallbackAnswer(NamedTuple):
    """What a route's fallback answered, once its primary did not know the name, tag or blob."""

    host: str
    status: int


class MirrorAnswer(NamedTuple):
    """What a route's mirror answered, once its primary failed: how the primary failed, in the
    log's words (`unreachable`, `timeout`, `503`, `skipped`...), and the mirror and its status."""

    failure: str
    host: str
    status: int


class Response:
    __slots__ = ("body", "close", "fallback", "headers", "mirror", "status", "upstream_status")

    def __init__(
        self,
        status: int,
        headers: Headers | None = None,
        body: Iterable[bytes] = (),
        upstream_status: int | None = None,
        close: Callable[[], None] = _nothing_to_close,
    ) -> None:
        self.status = status
        self.headers = Headers() if headers is None else headers
        self.body = body
        # What the upstream answered, for the request log.
        self.upstream_status = upstream_status
        self.close = close
        # What the route's fallback answered, when it was asked.
        self.fallback: FallbackAnswer | None = None
        # What the route's mirror answered, when the primary failed.
        self.mirror: MirrorAnswer | None = None

    @classmethod
    def from_error(cls, error: RegistryError) -> Response:
        body = error.body()
        headers = Headers(
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        for name, value in error.headers:
            headers.add(name, value)
        return cls(error.status, headers, [body])

    @classmethod
    def from_bytes(
        cls, status: int, headers: Headers, body: bytes, upstream_status: int | None = None
    ) -> Response:
        headers.set("Content-Length", str(len(body)))
        return cls(status, headers, [body], upstream_status)


def request_origin(headers: Headers, default_scheme: str) -> Origin:
    """The vanity origin the client used: forwarded headers first, as a platform sets them."""
    scheme = (headers.get("x-forwarded-proto") or default_scheme).split(",")[0].strip().lower()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if scheme not in ("http", "https"):
        raise RegistryError(Refusal.BAD_REQUEST, f"unsupported forwarded scheme {scheme!r}")
    if not is_valid_host(host):
        raise RegistryError(Refusal.BAD_REQUEST, f"invalid or missing Host header {host!r}")
    return Origin(scheme, host)
