"""A stand-in for Vercel's edge cache in front of crev, following Vercel's documented rules.

It caches an answer to a GET or HEAD request without `Authorization` or `Range`, with status
200, 404, 301 or 308 and a body up to 10 MB, for the lifetime the first of these gives:
`Vercel-CDN-Cache-Control`, then `CDN-Cache-Control` (`s-maxage` or `max-age`), then
`Cache-Control`, where only `s-maxage` counts (`max-age` is for browsers); `private`,
`no-store` and `no-cache` mean not cached. A HEAD is answered from a cached GET of the same
target too. Every request is recorded with whether the cache answered it.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .stand_in import AnyMethodHandler, StandInServer, end_to_end

CACHEABLE_STATUSES = frozenset({200, 404, 301, 308})
MAX_CACHED_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class EdgeRequest:
    method: str
    target: str
    status: int
    cached: bool
    authorized: bool


@dataclass
class _Entry:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    expires: float


def edge_lifetime(headers: list[tuple[str, str]]) -> float | None:
    """Seconds the edge keeps an answer with these headers, or None."""
    fields = {name.lower(): value for name, value in headers}
    for name, counted in (
        ("vercel-cdn-cache-control", ("s-maxage", "max-age")),
        ("cdn-cache-control", ("s-maxage", "max-age")),
        ("cache-control", ("s-maxage",)),
    ):
        if name in fields:
            return _lifetime(fields[name], counted)
    return None


def _lifetime(value: str, counted: tuple[str, ...]) -> float | None:
    directives = {}
    for part in value.split(","):
        key, _, argument = part.strip().lower().partition("=")
        directives[key] = argument.strip('"')
    if {"private", "no-store", "no-cache"} & directives.keys():
        return None
    for key in counted:
        if directives.get(key, "").isdigit():
            seconds = int(directives[key])
            return float(seconds) if seconds > 0 else None
    return None


@dataclass
class CachingEdge:
    """The edge at `url`, forwarding misses to `origin` (http://host:port), keeping answers
    of the `keeps` statuses (Vercel's by default)."""

    origin: str
    keeps: frozenset[int] = CACHEABLE_STATUSES
    requests: list[EdgeRequest] = field(default_factory=list)
    _cache: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: StandInServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return self._server.host

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def misses(self) -> list[EdgeRequest]:
        with self._lock:
            return [request for request in self.requests if not request.cached]

    def cached_targets(self) -> set[str]:
        with self._lock:
            return {target for _, target in self._cache}

    def lookup(self, method: str, target: str) -> _Entry | None:
        with self._lock:
            for key in (
                ((method, target), ("GET", target)) if method == "HEAD" else [(method, target)]
            ):
                entry = self._cache.get(key)
                if entry is not None and entry.expires > time.monotonic():
                    return entry
        return None

    def store(self, method: str, target: str, entry: _Entry) -> None:
        with self._lock:
            self._cache[(method, target)] = entry

    def record(self, request: EdgeRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> None:
        edge = self

        class Handler(_EdgeHandler):
            owner = edge

        self._server = StandInServer(Handler, name="caching-edge").start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


@contextlib.contextmanager
def run_caching_edge(
    origin: str, keeps: frozenset[int] = CACHEABLE_STATUSES
) -> Iterator[CachingEdge]:
    edge = CachingEdge(origin, keeps)
    edge.start()
    try:
        yield edge
    finally:
        edge.stop()


def _forwarded(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """What the edge passes on of a message it frames anew: its own `Content-Length` included."""
    return [
        (name, value) for name, value in end_to_end(headers) if name.lower() != "content-length"
    ]


class _EdgeHandler(AnyMethodHandler):
    disable_nagle_algorithm = True
    owner: CachingEdge

    def serve(self) -> None:
        authorized = "authorization" in {name.lower() for name in self.headers}
        cacheable_request = (
            self.command in ("GET", "HEAD") and not authorized and "Range" not in self.headers
        )
        entry = self.owner.lookup(self.command, self.path) if cacheable_request else None
        if entry is not None:
            self.owner.record(EdgeRequest(self.command, self.path, entry.status, True, authorized))
            self._answer(
                entry.status,
                [*entry.headers, ("X-Vercel-Cache", "HIT")],
                entry.body,
                len(entry.body),
            )
            return
        status, headers, body, length = self._forward()
        self.owner.record(EdgeRequest(self.command, self.path, status, False, authorized))
        lifetime = edge_lifetime(headers)
        if (
            cacheable_request
            and status in self.owner.keeps
            and len(body) <= MAX_CACHED_BYTES
            and lifetime is not None
        ):
            entry = _Entry(status, headers, body, time.monotonic() + lifetime)
            self.owner.store(self.command, self.path, entry)
        self._answer(status, [*headers, ("X-Vercel-Cache", "MISS")], body, length)

    def _forward(self) -> tuple[int, list[tuple[str, str]], bytes, int]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        origin = urlsplit(self.owner.origin)
        connection = http.client.HTTPConnection(origin.hostname or "", origin.port, timeout=60)
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in _forwarded(self.headers.items()):
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            data = response.read()
            headers = _forwarded(response.getheaders())
            # A HEAD answer announces the length of a body it does not carry.
            announced = int(response.getheader("Content-Length") or len(data))
            return (
                response.status,
                headers,
                data,
                announced if self.command == "HEAD" else len(data),
            )
        finally:
            connection.close()

    def _answer(
        self, status: int, headers: list[tuple[str, str]], body: bytes, length: int
    ) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
