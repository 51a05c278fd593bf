"""What an edge cache (Vercel's CDN) may keep of the answers crev gives without client
credentials: routes where crev authenticates to the upstream itself.

Vercel caches a function's answer to a GET or HEAD without `Authorization` when a header gives it
a shared-cache lifetime (`s-maxage`, or `CDN-Cache-Control`); `max-age` alone is for browsers.
Content addressed by digest never changes, so a 200 for it is kept for a year. Everything else
may change or must not be shared: a tag moves and answers by `Accept`, tag lists grow,
referrers are added, a redirect to storage carries a signed, short-lived URL, a 401 or 404 may
turn into content. Those are marked `no-store`, whatever the upstream said.
"""

from __future__ import annotations

from .endpoints import READ_METHODS, Endpoint, Kind
from .messages import Headers
from .names import Digest

IMMUTABLE = "public, max-age=31536000, s-maxage=31536000, immutable"
NOT_SHARED = "no-store"
# `/v2/` of a public route says only "no login needed"; a few minutes at the edge spare a
# function call per pull.
BASE_CACHE_CONTROL = "public, max-age=300, s-maxage=300"
# Headers by which an upstream could set crev's edge policy; crev sets it alone.
_CDN_HEADERS = ("CDN-Cache-Control", "Vercel-CDN-Cache-Control", "Surrogate-Control")


def set_edge_caching(headers: Headers, endpoint: Endpoint, method: str, status: int) -> None:
    """Mark an answer crev got with its own upstream authentication as cacheable at the edge
    for a year when it is content addressed by digest, and as not to be stored otherwise."""
    for name in _CDN_HEADERS:
        headers.remove(name)
    headers.set(
        "Cache-Control", IMMUTABLE if is_immutable(endpoint, method, status) else NOT_SHARED
    )


def is_immutable(endpoint: Endpoint, method: str, status: int) -> bool:
    return (
        status == 200
        and method in READ_METHODS
        and endpoint.kind in (Kind.MANIFEST, Kind.BLOB)
        and isinstance(endpoint.reference, Digest)
    )
