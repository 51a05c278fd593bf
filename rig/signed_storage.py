"""A stand-in for the storage a registry redirects blob reads to, which records every request
with its headers: what the tests read to see that no credential reached it.

Like S3 with a presigned URL, it serves a blob only to the method and within the lifetime its
URL was signed for (SigV4's `X-Amz-Date` and `X-Amz-Expires`, here signed with an HMAC of its
own), refuses a request that also carries `Authorization` ("Only one auth mechanism allowed"),
and answers a `Range` with a 206.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

from .stand_in import AnyMethodHandler, StandInServer

# distribution signs its redirects for 20 minutes.
DEFAULT_LIFETIME_S = 1200
CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True)
class StoredRequest:
    """One request the storage saw: method, target, every header as sent, and its answer."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    status: int

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


@dataclass
class SignedStorage:
    """Blobs by digest at `url`, each reached by a URL from `signed_url`."""

    blobs: Mapping[str, bytes]
    requests: list[StoredRequest] = field(default_factory=list)
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(16), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _server: StandInServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def host(self) -> str:
        assert self._server is not None
        return self._server.host

    def signed_url(
        self,
        digest: str,
        *,
        method: str = "GET",
        lifetime: int = DEFAULT_LIFETIME_S,
        signed_at: float | None = None,
    ) -> str:
        """A URL for `digest`, good for `method` from `signed_at` (now) for `lifetime` s."""
        path = f"/blobs/{digest}/data"
        date = datetime.fromtimestamp(
            time.time() if signed_at is None else signed_at, UTC
        ).strftime("%Y%m%dT%H%M%SZ")
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Date": date,
            "X-Amz-Expires": str(lifetime),
            "X-Amz-SignedHeaders": "host",
        }
        query["X-Amz-Signature"] = self._signature(method, path, date, str(lifetime))
        return f"{self.url}{path}?{urlencode(query)}"

    def _signature(self, method: str, path: str, date: str, lifetime: str) -> str:
        signed = "\n".join([method, path, date, lifetime]).encode()
        return hmac.new(self._secret, signed, hashlib.sha256).hexdigest()

    def verdict(self, method: str, target: str, headers: Mapping[str, str]) -> tuple[int, str]:
        """What the storage answers a request, before any body: 200 when it may have the blob,
        else the status and S3's error code."""
        parts = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        if "authorization" in {name.lower() for name in headers}:
            return 400, "InvalidArgument"  # "Only one auth mechanism allowed"
        date, lifetime = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        expected = self._signature(method, parts.path, date, lifetime)
        if not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
            return 403, "SignatureDoesNotMatch"
        signed_at = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        if time.time() > signed_at + int(lifetime):
            return 403, "AccessDenied"  # "Request has expired"
        if self.blob_at(parts.path) is None:
            return 404, "NoSuchKey"
        return 200, ""

    def blob_at(self, path: str) -> bytes | None:
        match = re.fullmatch(r"/blobs/(?P<digest>[^/]+)/data", path)
        return self.blobs.get(match["digest"]) if match else None

    def record(self, request: StoredRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def seen(self) -> list[StoredRequest]:
        with self._lock:
            return list(self.requests)


class _StorageHandler(AnyMethodHandler):
    storage: SignedStorage

    def serve(self) -> None:
        headers = dict(self.headers.items())
        status, code = self.storage.verdict(self.command, self.path, headers)
        blob = self.storage.blob_at(urlsplit(self.path).path) or b""
        start, end = 0, len(blob)
        if status == 200 and "Range" in self.headers:
            match = _RANGE.fullmatch(self.headers["Range"].strip())
            status, start, end = _ranged(match, len(blob))
        self.storage.record(
            StoredRequest(self.command, self.path, tuple(self.headers.items()), status)
        )
        if status not in (200, 206):
            body = f"<Error><Code>{code or 'InvalidRange'}</Code></Error>".encode()
            self._head(status, [("Content-Type", "application/xml")], len(body))
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        fields = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        if status == 206:
            fields.append(("Content-Range", f"bytes {start}-{end - 1}/{len(blob)}"))
        self._head(status, fields, end - start)
        if self.command == "HEAD":
            return
        for offset in range(start, end, CHUNK):
            self.wfile.write(blob[offset : min(offset + CHUNK, end)])

    def _head(self, status: int, fields: list[tuple[str, str]], length: int) -> None:
        self.send_response_only(status)
        for name, value in fields:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()


def _ranged(match: re.Match[str] | None, size: int) -> tuple[int, int, int]:
    """Status, start and end (exclusive) of a single byte range, as S3 reads one."""
    if match is None or match.groups() == ("", ""):
        return 200, 0, size  # not a range S3 reads: the whole blob
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), size if last == "" else min(int(last) + 1, size)
    if start >= size or start >= end:
        return 416, 0, 0
    return 206, start, end


@contextlib.contextmanager
def run_signed_storage(
    blobs: Mapping[str, bytes], *, ssl_context: ssl.SSLContext | None = None
) -> Iterator[SignedStorage]:
    """The storage on a free port of 127.0.0.1 (over TLS with `ssl_context`) until the block
    ends."""
    storage = SignedStorage(blobs)

    class Handler(_StorageHandler):
        pass

    Handler.storage = storage
    server = StandInServer(Handler, ssl_context=ssl_context, name="signed-storage")
    storage._server = server
    with server:
        yield storage
