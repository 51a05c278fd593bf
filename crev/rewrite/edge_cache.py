"""What an edge cache (Vercel's CDN) may keep of the answers crev gives without client
credentials: routes where crev authenticates to the upstream itself.

Vercel caches a function's answer to a GET or HEAD without `Authorization` when a header gives it
a shared-cache lifetime (`s-maxage`, or `CDN-Cache-Control`); `max-age` alone is for browsers.
Content addressed by digest never changes, so a 200 for it is kept for a year. Everything else
may change or must not be shared: a tag moves and answers by `Accept`, tag lists grow,
referrers are added, a redirect to storage carries a signed, short-lived URL, a 401 or 404 may
turn into content. Those are marked `no-store`, whatever the upstream said; but a public route's
owner may let the edge keep a 200 to a manifest by tag and a tag list for a while
(`CREV_TAG_CACHE_SECONDS`), trading a pushed tag's delay for pulls that never reach crev, and
crev/rewrite/storage_redirect.py keeps a blob's redirect while its signed URL lives.
"""

from __future__ import annotations

from ..endpoints import READ_METHODS, Endpoint
from ..messages import Headers
from ..names import Digest

IMMUTABLE = "public, max-age=31536000, s-maxage=31536000, immutable"
NOT_SHARED = "no-store"
# `/v2/` of a public route says only "no login needed"; a few minutes at the edge spare a
# function call per pull.
BASE_CACHE_CONTROL = "public, max-age=300, s-maxage=300"
# Headers by which an upstream could set crev's edge policy; crev sets it alone.
_CDN_HEADERS = ("CDN-Cache-Control", "Vercel-CDN-Cache-Control", "Surrogate-Control")


def set_edge_caching(
    headers: Headers, endpoint: Endpoint, method: str, status: int, tag_seconds: int = 0
) -> None:
    """Mark an answer crev got with its own upstream authentication as cacheable at the edge
    for a year when it is content addressed by digest, for `tag_seconds` when it is named by
    tag (a public route's choice), and as not to be stored otherwise."""
    for name in _CDN_HEADERS:
        headers.remove(name)
    if is_immutable(endpoint, method, status):
        headers.set("Cache-Control", IMMUTABLE)
    elif tag_seconds and is_by_tag(endpoint, method, status):
        headers.set("Cache-Control", kept_at_edge_for(tag_seconds))
        # A manifest by tag is answered by `Accept`: an edge that keys on it never gives one
        # client's media type to another. What the upstream varies by is kept beside it.
        _vary_by(headers, "Accept")
    else:
        headers.set("Cache-Control", NOT_SHARED)


def _vary_by(headers: Headers, name: str) -> None:
    varied = {
        field.strip().lower() for value in headers.get_all("vary") for field in value.split(",")
    }
    if name.lower() not in varied and "*" not in varied:
        headers.add("Vary", name)


def kept_at_edge_for(seconds: int) -> str:
    """Kept at the edge for `seconds`; a browser keeps nothing."""
    return f"public, max-age=0, s-maxage={seconds}"


def is_by_tag(endpoint: Endpoint, method: str, status: int) -> bool:
    return (
        status == 200
        and method in READ_METHODS
        and endpoint.kind.facts.kept_by_tag
        and not isinstance(endpoint.reference, Digest)
    )


def is_immutable(endpoint: Endpoint, method: str, status: int) -> bool:
    return (
        status == 200
        and method in READ_METHODS
        and endpoint.kind.facts.immutable_by_digest
        and isinstance(endpoint.reference, Digest)
    )
