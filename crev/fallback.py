"""Moving registries: which answers of a route's upstream let crev ask the route's fallback, and
the tag list both upstreams make together.

A fallback is the registry a vanity domain is moving away from. It is asked only for reads crev
makes with its own upstream tokens, and only when the primary says it does not know the name,
tag or blob: every other answer (a 401, a 403, a 429, a 5xx, a redirect) stands, so a fallback
never hides an outage or a denial. A tag list is the union of both, ordered and paginated by crev
as the registry API orders and paginates one (lexically, by `n` and `last`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from .endpoints import READ_METHODS, Endpoint
from .errors import ErrorCode, InvalidNameError, Refusal, RegistryError
from .names import RepositoryName
from .routing import Route

# The registry's words for "not here"; a 404 with any other code (or none) stands.
UNKNOWN_CODES = frozenset(
    {ErrorCode.NAME_UNKNOWN, ErrorCode.MANIFEST_UNKNOWN, ErrorCode.BLOB_UNKNOWN}
)


def may_ask_fallback(route: Route, endpoint: Endpoint, method: str, crev_authorizes: bool) -> bool:
    """Whether this request may reach the route's fallback at all: a read of content, made
    with crev's own tokens (a client's token is for the primary's realm alone), of a name the
    fallback can hold."""
    return (
        crev_authorizes
        and method in READ_METHODS
        and endpoint.kind.facts.falls_back
        and endpoint.name is not None
        and fallback_for(route, endpoint.name) is not None
    )


def fallback_for(route: Route, name: RepositoryName) -> Route | None:
    """The route's fallback where it can hold `name`: none where its namespace would make the
    name longer than a name may be, so the primary's answer is the only one there is."""
    if route.fallback is None:
        return None
    try:
        route.fallback.to_upstream(name)
    except InvalidNameError:
        return None
    return route.fallback


def unknown_here(status: int, method: str, body: bytes | None) -> bool:
    """Whether an upstream's answer says it does not know the name, tag or blob: a 404 whose
    registry error names NAME_UNKNOWN, MANIFEST_UNKNOWN or BLOB_UNKNOWN. A 404 to a HEAD has no
    body to say more, and is taken as one."""
    if status != 404:
        return False
    if method == "HEAD":
        return True
    return bool(error_codes(body or b"") & UNKNOWN_CODES)


def error_codes(body: bytes) -> frozenset[str]:
    """The codes of a registry error body; none for anything else."""
    try:
        document = json.loads(body)
    except ValueError:
        return frozenset()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return frozenset()
    return frozenset(
        error["code"]
        for error in errors
        if isinstance(error, dict) and isinstance(error.get("code"), str)
    )


class TagListQuery(NamedTuple):
    """A client's `n` (page size) and `last` (the tag the page starts after)."""

    n: int | None = None
    last: str | None = None

    @classmethod
    def parse(cls, query: str) -> TagListQuery:
        params = dict(parse_qsl(query, keep_blank_values=True))
        n = params.get("n")
        if n is not None and not (n.isdigit() and len(n) <= 9):
            raise RegistryError(
                Refusal.PAGINATION_NUMBER_INVALID,
                f"n={n[:20]!r}: the page size must be a number",
            )
        return cls(None if n is None else int(n), params.get("last") or None)


class TagPage(NamedTuple):
    tags: list[str]
    # The `last` of the next page, when there is one.
    following: str | None = None


def tag_page(tags: Iterable[str], query: TagListQuery) -> TagPage:
    """One page of the union of `tags`: each once, in lexical order (as distribution sorts
    them), after `last`, at most `n` (all when `n` is absent)."""
    ordered = sorted(set(tags))
    if query.last is not None:
        ordered = [tag for tag in ordered if tag > query.last]
    if query.n is None or len(ordered) <= query.n:
        return TagPage(ordered)
    shown = ordered[: query.n]
    return TagPage(shown, shown[-1] if shown else None)


def next_page_link(path: str, n: int, last: str) -> str:
    """The `Link` to the next page of a tag list crev paginates, on the client's own path."""
    return f'<{path}?{urlencode([("n", str(n)), ("last", last)])}>; rel="next"'
