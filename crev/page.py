"""A page for people: what a browser gets at the vanity domain instead of a registry error.

`/` lists the routes and how to pull; `/<name>` lists a repository's tags, fetched through the
same upstream path and auth rules as a registry client (anonymously, or with the route's
server-side credentials). Registry clients never get it: `/v2/` is never a page, and a request
that does not accept HTML gets a registry JSON error.
"""

from __future__ import annotations

from html import escape
from typing import NamedTuple

from .config import Settings
from .endpoints import MAX_TAG_LIST_BYTES, Endpoint, Kind
from .errors import (
    InvalidNameError,
    MalformedHeaderError,
    NameUnknownError,
    UpstreamError,
    method_not_allowed,
    not_served,
)
from .failover import circuits, mirrors_for, send_with_failover
from .fallback import fallback_for, tag_names
from .links import next_page, same_list
from .messages import Headers, Request, Response
from .names import RepositoryName
from .routing import Route
from .scope import Scope
from .tag_order import newest_first
from .upstream import UpstreamRequest
from .upstream_auth import send_authorized

# Browsers may keep a page a minute: tags change, and a person reloads to see a new one.
PAGE_CACHE_CONTROL = "public, max-age=60"
# A page shows the newest tags first; a repository with thousands needs no more here.
MAX_TAGS_SHOWN = 200
# Pages of a paginated tag list the page follows before it says the list goes on.
MAX_TAG_PAGES = 20


def serve_page(request: Request, settings: Settings) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed(f"{request.method} is not served", "GET, HEAD")
    if not _wants_html(request.headers):
        raise not_served(
            f"{request.path!r} is a page for browsers (it answers Accept: text/html); "
            "the registry API is at /v2/"
        )
    if settings.browser_redirect:
        headers = Headers([("Location", settings.browser_redirect), ("Content-Length", "0")])
        return Response(302, headers)
    host = request.origin.host
    path = request.path.strip("/")
    if not path:
        return _html(200, _home(settings, host))
    try:
        name = RepositoryName.parse(path)
        route = settings.routes.for_name(name)
        # A name the route's namespace makes too long upstream is no image here either.
        route.to_upstream(name)
    except (InvalidNameError, NameUnknownError) as error:
        return _html(404, _not_found(host, path, error.message))
    listing = _tags(route, name, settings)
    fallback = fallback_for(route, name)
    if fallback is not None:
        listing = _with_fallback(listing, _tags(fallback, name, settings))
    return _html(listing.status, _repository(host, name, route, fallback, listing))


def _wants_html(headers: Headers) -> bool:
    return any("text/html" in value for value in headers.get_all("accept"))


class TagListing(NamedTuple):
    """What the page can say of a repository's tags, and the status the page is answered with."""

    status: int
    tags: list[str]
    # Why there are no tags to show, in words for the page.
    problem: str | None = None
    # The upstream had more pages than the page follows.
    truncated: bool = False


def _tags(route: Route, name: RepositoryName, settings: Settings) -> TagListing:
    """The repository's tags as an anonymous client (or crev's own credentials) sees them: the
    route's upstream's, or where it fails, a mirror's."""
    try:
        served = send_with_failover(
            route,
            mirrors_for(route, Endpoint(Kind.TAGS, name)),
            lambda upstream: _tag_pages(upstream, name, settings),
            circuits(),
            settings.failover_seconds,
        )
    except UpstreamError as error:
        return TagListing(502, [], f"the registry could not be asked: {error.message}")
    return served.answer.listing


class _Listed(NamedTuple):
    """One upstream's tags for the page, and the status its tag list was answered with."""

    listing: TagListing
    status: int

    def release(self) -> None:
        pass


def _tag_pages(route: Route, name: RepositoryName, settings: Settings) -> _Listed:
    """The tags of one upstream, following the tag list's pages (`Link: rel="next"`) on the same
    upstream, up to a bound; UpstreamError where it could not be asked."""
    upstream_name = route.to_upstream(name)
    url = route.upstream.url(Endpoint(Kind.TAGS, name).upstream_path(route))
    headers = Headers([("Accept", "application/json")])
    scopes = (Scope.repository(upstream_name, "pull"),)
    tags: list[str] = []
    try:
        for _ in range(MAX_TAG_PAGES):
            # Authorized as a public route's clients are: with crev's credentials, or with an
            # anonymous token from the same cache the registry endpoint uses.
            answer = send_authorized(
                UpstreamRequest("GET", url, headers), route, scopes, settings.timeout
            )
            body = answer.read(MAX_TAG_LIST_BYTES, settings.timeout)
            if answer.status != 200:
                return _Listed(_unlisted(answer.status), answer.status)
            tags += tag_names(body)
            link = answer.headers.get("link")
            following = next_page(link, url) if link else None
            if following is None:
                return _Listed(TagListing(200, tags), 200)
            next_url = same_list(following, url)
            if next_url is None:
                return _Listed(TagListing(200, tags, truncated=True), 200)
            url = next_url
    except MalformedHeaderError:
        pass
    return _Listed(TagListing(200, tags, truncated=True), 200)


def _with_fallback(primary: TagListing, fallback: TagListing) -> TagListing:
    """The tags of both upstreams of a route with a fallback; the fallback's alone where the
    primary does not know the name, and the primary's where the fallback has none to add."""
    if primary.status == 404:
        return fallback
    if primary.status != 200 or fallback.status != 200:
        return primary
    return TagListing(
        200, primary.tags + fallback.tags, truncated=primary.truncated or fallback.truncated
    )


def _unlisted(status: int) -> TagListing:
    """What the page says for an upstream answer that is not a tag list."""
    if status in (401, 403):
        return TagListing(403, [], "This repository is private. Log in to pull it.")
    if status == 404:
        return TagListing(404, [], "There is no such repository.")
    return TagListing(502, [], f"The registry answered {status}.")


def _html(status: int, body: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", PAGE_CACHE_CONTROL),
            ("X-Content-Type-Options", "nosniff"),
            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
        ]
    )
    return Response.from_bytes(status, headers, body.encode())


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto;
       padding: 0 1rem; color: #1b1f24 }
h1 { font-size: 1.6rem; margin-bottom: .2rem }
p.lead, .muted { color: #57606a } p.lead { margin-top: 0 }
code, pre { font: 14px ui-monospace, SFMono-Regular, Menlo, monospace }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
      padding: .8rem 1rem; overflow-x: auto; user-select: all }
table { border-collapse: collapse; width: 100% }
td, th { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #d0d7de }
a { color: #0969da }
p.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .6rem 1rem }
"""


def _document(title: str, *parts: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _table(headings: list[str], rows: list[list[str]]) -> str:
    """A table; cells are HTML already, headings are text."""
    head = "".join(f"<th>{escape(heading)}</th>" for heading in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _home(settings: Settings, host: str) -> str:
    rows = [
        [
            _code(f"{host}/{route.vanity_prefix}NAME"),
            _sources(route),
            "crev's credentials" if route.credentials else "public, or your credentials",
        ]
        for route in settings.routes.routes
    ]
    example = f"{host}/{settings.routes.default.vanity_prefix}NAME:TAG"
    return _document(
        host,
        f"<h1>{escape(host)}</h1>",
        "<p class=lead>A container registry: its images are served from the registries below.</p>",
        f"<pre>docker pull {escape(example)}</pre>",
        _table(["Name on this domain", "Served from", "Access"], rows),
        f"<p class=muted>Open {_code(f'{host}/NAME')} in a browser to see a repository's tags.</p>",
    )


def _served_from(route: Route) -> str:
    """Where a route's names live upstream, as `Route.describe` says it (official images under
    `library/`, as the repository page shows them), as HTML."""
    return ", ".join(
        f"{_code(place)} {names}".rstrip()
        for place, names in route.upstream_places(route.upstream.host)
    )


def _sources(route: Route) -> str:
    """Where a route's names come from, as HTML: its upstream (and its mirrors, when it fails),
    then its fallback if any."""
    shown = _served_from(route)
    if route.mirrors:
        mirrors = "; ".join(_served_from(mirror) for mirror in route.mirrors)
        shown += f" (when it fails: {mirrors})"
    if route.fallback is None:
        return shown
    return f"{shown}, then {_served_from(route.fallback)}"


def _repository(
    host: str, name: RepositoryName, route: Route, fallback: Route | None, listing: TagListing
) -> str:
    reference = f"{host}/{name.value}"
    ordered = newest_first(listing.tags)
    shown = ordered[:MAX_TAGS_SHOWN]
    first = shown[0] if shown else "TAG"
    if listing.problem is not None:
        body = f"<p class=notice>{escape(listing.problem)}</p>"
    elif not listing.tags:
        body = "<p class=muted>No tags yet.</p>"
    else:
        rows = [[_code(tag), _code(f"docker pull {reference}:{tag}")] for tag in shown]
        count = f"{len(ordered)}+" if listing.truncated else str(len(ordered))
        body = f"<h2>Tags ({count})</h2>" + _table(["Tag", "Pull"], rows)
        if len(ordered) > len(shown):
            body += f"<p class=muted>and {len(ordered) - len(shown)} more, not shown.</p>"
        if listing.truncated:
            body += (
                f"<p class=muted>The registry has more tags than this page reads "
                f"({MAX_TAG_PAGES} pages); list them all with "
                f"{_code(f'skopeo list-tags docker://{reference}')}.</p>"
            )
    source = _code(f"{route.upstream.host}/{route.to_upstream(name).value}")
    mirrors = mirrors_for(route, Endpoint(Kind.TAGS, name))
    if mirrors:
        source += (
            " (when it fails, from "
            + ", then ".join(
                _code(f"{mirror.upstream.host}/{mirror.to_upstream(name).value}")
                for mirror in mirrors
            )
            + ")"
        )
    if fallback is not None:
        source += ", and what is not there yet from " + _code(
            f"{fallback.upstream.host}/{fallback.to_upstream(name).value}"
        )
    pull = (
        ""
        if listing.status == 404
        else f"<pre>docker pull {escape(reference)}:{escape(first)}</pre>"
    )
    return _document(
        reference,
        f"<h1>{escape(reference)}</h1>",
        f"<p class=lead>Served from {source}</p>",
        pull,
        body,
        f'<p><a href="/">All of {escape(host)}</a></p>',
    )


def _not_found(host: str, path: str, reason: str) -> str:
    return _document(
        f"Not found: {path}",
        "<h1>Not found</h1>",
        f"<p>{escape(path)} is not an image name here: {escape(reason)}.</p>",
        f'<p><a href="/">All of {escape(host)}</a></p>',
    )
