"""A blob read the upstream answers with a redirect to signed storage, as crev answers it.

By default the redirect goes to the client as it came: the client fetches the blob from storage,
and no blob byte passes through crev. Two choices change that:

- Kept at the edge. Vercel's CDN keeps a 308 but never a 307, so every blob of every pull would
  invoke crev and cost an upstream round trip. Where crev holds the upstream's tokens and the
  client sent no `Authorization`, a GET's redirect whose signed URL says when it expires
  (crev/rewrite/signed_url.py) is answered as a `308 Permanent Redirect` to the same URL, which the
  edge keeps until a minute before the URL expires, an hour at most. A HEAD's redirect is never
  kept: a URL is signed for one method, and an edge answers a HEAD from a GET's entry.
- Followed. Networks that reach only the vanity domain cannot follow a redirect to storage; on
  a route that follows redirects crev fetches the blob from storage itself and streams it on.
  Storage gets what a read of bytes needs (the range, the conditions), never the client's or
  crev's registry credentials: the signature in the URL is its authorization.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ..errors import UpstreamError
from ..messages import Headers, Request, Response
from ..upstream import Upstream
from ..upstream.connections import Connections, UpstreamRequest
from ..upstream.response import UpstreamResponse
from ..urls import URL, is_http_url
from .edge_cache import kept_at_edge_for
from .header_filters import client_response_headers
from .links import REDIRECT_STATUSES
from .signed_url import signed_until

if TYPE_CHECKING:
    from typing import Protocol

    class Redirect(Protocol):
        """An upstream's redirect as crev holds it, its body unread (a class only the type
        checker makes: making it costs a cold start time)."""

        status: int
        headers: Headers

        def release(self) -> None: ...


PERMANENT_REDIRECT = 308
# The edge stops handing out a URL this long before it expires: a client that gets it from the
# edge at the last moment still has time to follow it.
EXPIRY_MARGIN_SECONDS = 60
# However long a URL lives, the edge asks again after an hour.
MAX_EDGE_SECONDS = 3600
# Storage may redirect once more (a bucket's region, a CDN in front of it); a loop is an error.
MAX_STORAGE_HOPS = 3
# What a storage read carries of the client's request: the range and its conditions.
_STORAGE_REQUEST_HEADERS = (
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
)
# What the client gets of storage's answer: the bytes' description, not storage's own fields
# (`x-amz-*`, its request ids), which would only tell the client where crev fetched from.
_STORAGE_ANSWER_HEADERS = frozenset(
    {
        "content-length",
        "content-range",
        "content-type",
        "content-encoding",
        "accept-ranges",
        "etag",
        "last-modified",
    }
)
# Storage's answers that are a blob's bytes or what the client's conditions asked for.
_STORAGE_ANSWERS = frozenset({200, 206, 304, 416})


def edge_seconds(location: str, now: float) -> int | None:
    """How long an edge may keep a redirect to the signed URL `location` at Unix time `now`:
    until `EXPIRY_MARGIN_SECONDS` before it expires, `MAX_EDGE_SECONDS` at most; None when its
    expiry cannot be read or is too near."""
    expires = signed_until(location)
    if expires is None:
        return None
    seconds = int(expires - now) - EXPIRY_MARGIN_SECONDS
    if seconds < 1:
        return None
    return min(seconds, MAX_EDGE_SECONDS)


def keep_at_edge(
    status: int, method: str, client_authorized: bool, headers: Headers, now: float
) -> int:
    """The status of a blob read's redirect as crev answers it where crev authorizes upstream:
    a GET's redirect with no client `Authorization` and a readable, distant expiry becomes a
    308 with a shared-cache lifetime set in `headers`; anything else keeps `status` (and the
    `no-store` the edge policy gave it)."""
    location = headers.get("location")
    if status not in REDIRECT_STATUSES or method != "GET" or client_authorized or not location:
        return status
    seconds = edge_seconds(location, now)
    if seconds is None:
        return status
    headers.set("Cache-Control", kept_at_edge_for(seconds))
    return PERMANENT_REDIRECT


def storage_url(location: str, asked: URL) -> URL | None:
    """Where a blob read's redirect sends the client: `location` resolved against `asked`, the
    upstream URL that answered (Artifact Registry redirects to a path on its own host). None for
    a URL that is not storage: not http(s), or the upstream's own registry API, which would
    want the credentials storage must never get."""
    try:
        resolved = urljoin(str(asked), location)
        parts = urlsplit(resolved)
    except ValueError:
        return None
    if not is_http_url(resolved):
        return None
    if asked.origin.is_same_origin(parts.scheme, parts.netloc) and parts.path.startswith("/v2/"):
        return None
    return URL.parse(resolved)


def fetch_from_storage(
    connections: Connections, url: URL, method: str, client_headers: Headers, timeout: float
) -> UpstreamResponse:
    """Read a blob from storage at the signed `url` with `method`, carrying only the client's
    range and conditions, following storage's own redirects (`MAX_STORAGE_HOPS` at most).
    Storage's refusal, or anything but bytes, is an UpstreamError naming it."""
    headers = Headers(
        (name, value) for name, value in client_headers if name.lower() in _STORAGE_REQUEST_HEADERS
    )
    for _ in range(MAX_STORAGE_HOPS):
        answer = connections.send(UpstreamRequest(method, url, headers), timeout)
        if answer.status in _STORAGE_ANSWERS:
            return answer
        location = answer.headers.get("location")
        answer.release()
        following = (
            storage_url(location, url)
            if location is not None and answer.status in REDIRECT_STATUSES
            else None
        )
        if following is None:
            raise UpstreamError(
                f"storage {url.origin.host} answered the blob read with {answer.status}"
            )
        url = following
    raise UpstreamError(
        f"storage {url.origin.host} redirected the blob read more than {MAX_STORAGE_HOPS} times"
    )


def storage_answer_headers(answer: Headers, redirect: Headers, digest: str) -> Headers:
    """The head of the blob `digest` crev fetched from storage: storage's description of the
    bytes, and the registry's own fields from the redirect that sent crev there (the API
    version), with the digest a registry names its blobs by."""
    kept = Headers(
        (name, value)
        for name, value in client_response_headers(answer)
        if name.lower() in _STORAGE_ANSWER_HEADERS
    )
    for name, value in redirect:
        if name.lower().startswith("docker-") and name not in kept:
            kept.items.append((name, value))
    if "docker-content-digest" not in kept:
        kept.items.append(("Docker-Content-Digest", digest))
    return kept


def follow(
    request: Request, redirect: Redirect, asked: URL, digest: str, upstream: Upstream
) -> Response | None:
    """The blob `digest` read from the storage the `upstream`'s `redirect` (its answer to
    `asked`) points to, through the process's connections with no credential of the
    upstream's, streamed as storage sends it: a route that follows redirects. None for a
    redirect that is not to storage, which the client gets as it came."""
    location = redirect.headers.get("location")
    url = storage_url(location, asked) if location is not None else None
    if url is None:
        return None
    redirect.release()
    stored = fetch_from_storage(
        upstream.connections, url, request.method, request.headers, upstream.timeout
    )
    headers = storage_answer_headers(stored.headers, redirect.headers, digest)
    if not stored.has_body:
        stored.release()
        return Response(stored.status, headers, (), redirect.status)
    return Response(stored.status, headers, stored.stream(), redirect.status, stored.close)
