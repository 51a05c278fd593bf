"""A page for people: what a browser gets at the vanity domain instead of a registry error.

`/` lists the routes and how to pull; `/<name>` lists a repository's tags, fetched through the
same upstream path and auth rules as a registry client (anonymously, or with the route's
server-side credentials). Registry clients never get it: `/v2/` is never a page, and a request
that does not accept HTML gets a registry JSON error.
"""

from __future__ import annotations

from base64 import b64encode
from hashlib import sha256
from html import escape
from typing import NamedTuple
from urllib.parse import urljoin

from .config import Settings
from .endpoints import Endpoint, Kind
from .errors import (
    InvalidNameError,
    NameUnknownError,
    Refusal,
    RegistryError,
    UpstreamError,
    method_not_allowed,
)
from .failover import mirrors_for, send_with_failover
from .fallback import fallback_for, unknown_here
from .messages import Headers, Request, Response
from .names import RepositoryName
from .rewrite.links import REDIRECT_STATUSES
from .routing import Route
from .scope import Scope
from .tag_details import (
    DETAILS_SECONDS,
    Fetch,
    Fetched,
    TagDetails,
    fetch_details,
    is_cosign_tag,
    tags_to_detail,
)
from .tag_list import MAX_TAG_LIST_PAGES, NotATagList, read_tag_list
from .tag_order import newest_first
from .upstream.connections import UpstreamRequest
from .upstream.response import MAX_DRAINED_BYTES
from .urls import URL, Origin, is_http_url

# Browsers may keep a page a minute: tags change, and a person reloads to see a new one.
PAGE_CACHE_CONTROL = "public, max-age=60"
# A page shows the newest tags first; a repository with thousands needs no more here.
MAX_TAGS_SHOWN = 200


def serve_page(request: Request, settings: Settings) -> Response:
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed(f"{request.method} is not served", "GET, HEAD")
    if not _wants_html(request.headers):
        raise RegistryError(
            Refusal.NOT_SERVED,
            f"{request.path!r} is a page for browsers (it answers Accept: text/html); "
            "the registry API is at /v2/",
        )
    if settings.browser_redirect:
        headers = Headers([("Location", settings.browser_redirect), ("Content-Length", "0")])
        return Response(302, headers)
    host = request.origin.host
    path = request.path.strip("/")
    if not path:
        return _html(200, _home(settings, request.origin))
    try:
        name = RepositoryName.parse(path)
        route = settings.routes.for_name(name)
        # A name the route's namespace makes too long upstream is no image here either.
        route.to_upstream(name)
    except (InvalidNameError, NameUnknownError) as error:
        return _html(404, _not_found(host, path, error.message))
    listing, listed_by = _tags(route, name, settings.failover_seconds)
    fallback = fallback_for(route, name)
    if fallback is not None:
        listing = _with_fallback(listing, _tags(fallback, name, settings.failover_seconds)[0])
    details: list[TagDetails] = []
    # Docker Hub counts every manifest GET against the pull limit of crev's address, which its
    # clients share: a page view must not cost them pulls.
    detailed = [
        r for r in (listed_by, fallback) if r is not None and not r.upstream.origin.is_docker_hub
    ]
    if listing.status == 200 and listing.tags and detailed[:1] == [listed_by]:
        details = fetch_details(
            _upstream_get(name, detailed, settings),
            tags_to_detail(newest_first(listing.tags)),
            listing.tags,
            tag_list_complete=not listing.truncated,
            seconds=min(DETAILS_SECONDS, settings.timeout),
        )
    return _html(listing.status, _repository(host, name, route, fallback, listing, details))


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


def _tags(route: Route, name: RepositoryName, failover_seconds: float) -> tuple[TagListing, Route]:
    """The repository's tags as an anonymous client (or crev's own credentials) sees them, as
    far as crev follows the list's pages, and the route that listed them: the route's own, or
    where its upstream fails, a mirror's."""
    endpoint = Endpoint(Kind.TAGS, name)
    try:
        served = send_with_failover(
            route,
            mirrors_for(route, endpoint),
            lambda upstream: _tags_on(upstream, name),
            failover_seconds,
        )
    except UpstreamError as error:
        return TagListing(502, [], f"the registry could not be asked: {error.message}"), route
    return served.answer.listing, served.route


class _UpstreamTags(NamedTuple):
    """One upstream's tags for the page, and the status its tag list was answered with."""

    listing: TagListing
    status: int

    def release(self) -> None:
        pass


def _tags_on(route: Route, name: RepositoryName) -> _UpstreamTags:
    """The tags of the route's upstream; UpstreamError where it could not be asked."""
    url = route.upstream.url(Endpoint(Kind.TAGS, name).upstream_path(route))
    scopes = (Scope.repository(route.to_upstream(name), "pull"),)
    # Authorized as a public route's clients are: with crev's credentials, or with an
    # anonymous token from the same cache the registry endpoint uses.
    listed = read_tag_list(route.upstream, url, scopes, route.upstream.anonymous_or_own)
    if isinstance(listed, NotATagList):
        listed.answer.release()
        return _UpstreamTags(_not_listed(listed.answer.status), listed.answer.status)
    return _UpstreamTags(TagListing(200, listed.tags, truncated=listed.cut is not None), 200)


def _upstream_get(name: RepositoryName, routes: list[Route], settings: Settings) -> Fetch:
    """The page's `Fetch`: a GET under the repository upstream, authorized as the tag list is,
    asked of a route's fallback where the primary says it does not know it. A redirect (a
    blob's, to storage) is followed once, without crev's credentials where it leaves the
    upstream."""

    def fetch(path: str, accept: str, limit: int, timeout: float) -> Fetched:
        primary, *fallbacks = routes
        answer = _get(primary, name, path, accept, limit, timeout)
        for fallback in fallbacks:
            if not unknown_here(answer.status, "GET", answer.body):
                break
            answer = _get(fallback, name, path, accept, limit, timeout)
        return answer

    return fetch


def _get(
    route: Route, name: RepositoryName, path: str, accept: str, limit: int, timeout: float
) -> Fetched:
    upstream_name = route.to_upstream(name)
    url = route.upstream.url(f"/v2/{upstream_name.value}/{path}")
    scopes = (Scope.repository(upstream_name, "pull"),)
    upstream = route.upstream
    answer = upstream.send(
        UpstreamRequest("GET", url, Headers([("Accept", accept)])),
        scopes,
        auth=upstream.anonymous_or_own,
    )
    location = answer.headers.get("location")
    if answer.status in REDIRECT_STATUSES and location:
        answer.release()
        target = urljoin(str(url), location)
        if not is_http_url(target):
            raise UpstreamError(f"upstream {route.upstream.host} redirected to {location!r}")
        redirected = URL.parse(target)
        request = UpstreamRequest("GET", redirected, Headers([("Accept", accept)]))
        if upstream.origin.is_same_origin(redirected.origin.scheme, redirected.origin.host):
            answer = upstream.send(request, scopes, auth=upstream.anonymous_or_own)
        else:
            # Storage: the signed URL is its authorization, and no credential of crev's goes.
            answer = upstream.connections.send(request, timeout)
    if answer.status == 404:
        # Its error code says whether a fallback may know the name.
        return Fetched(404, answer.headers, answer.read(MAX_DRAINED_BYTES, timeout))
    if answer.status != 200:
        answer.release()
        return Fetched(answer.status, answer.headers, b"")
    return Fetched(answer.status, answer.headers, answer.read(limit, timeout))


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


def _not_listed(status: int) -> TagListing:
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
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
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
      padding: .8rem 1rem; overflow-x: auto; user-select: all; margin: 0; flex: 1 }
div.pull { display: flex; gap: .5rem; align-items: center; margin: .6rem 0 }
table { border-collapse: collapse; width: 100% }
td, th { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #d0d7de }
td code { user-select: all; overflow-wrap: anywhere }
time, code.digest { white-space: nowrap }
a { color: #0969da }
p.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .6rem 1rem }
button.copy { font: 13px system-ui, sans-serif; padding: .15rem .5rem; cursor: pointer;
              border: 1px solid #d0d7de; border-radius: 6px; background: #f6f8fa }
span.signed { color: #1a7f37; font-weight: 600 }
"""

# Shows the copy buttons (hidden without JavaScript, where the text is selected by a click on
# it instead) and copies the text just before each.
_SCRIPT = """
for (const button of document.querySelectorAll("button.copy")) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const source = button.previousElementSibling;
    const copied = () => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    };
    const select = () => {
      getSelection().selectAllChildren(source);
      if (document.execCommand("copy")) copied();
    };
    if (navigator.clipboard && isSecureContext) {
      navigator.clipboard.writeText(source.textContent).then(copied, select);
    } else {
      select();
    }
  });
}
"""
# The one script the page runs, allowed by its hash: no other script, inline or fetched, runs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{b64encode(sha256(_SCRIPT.encode()).digest()).decode()}'"
)
_COPY_BUTTON = "<button type=button class=copy hidden>Copy</button>"


def _document(title: str, *parts: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(parts)}<script>{_SCRIPT}</script></body></html>"
    )


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _copyable(text: str) -> str:
    """A command as a block, with a copy button beside it."""
    return f"<div class=pull><pre>{escape(text)}</pre>{_COPY_BUTTON}</div>"


def _copyable_code(text: str) -> str:
    """A command inline (a table cell), with a copy button beside it."""
    return f"{_code(text)} {_COPY_BUTTON}"


def _table(headings: list[str], rows: list[list[str]]) -> str:
    """A table; cells are HTML already, headings are text."""
    head = "".join(f"<th>{escape(heading)}</th>" for heading in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _home(settings: Settings, origin: Origin) -> str:
    host = origin.host
    rows = [
        [
            _code(f"{host}/{route.vanity_prefix}NAME"),
            _sources(route),
            "crev's credentials" if route.server_side else "public, or your credentials",
        ]
        for route in settings.routes.routes
    ]
    prefix = settings.routes.default.vanity_prefix
    example = f"{host}/{prefix}NAME:TAG"
    return _document(
        host,
        f"<h1>{escape(host)}</h1>",
        "<p class=lead>A container registry: its images are served from the registries below.</p>",
        _copyable(f"docker pull {example}"),
        _table(["Name on this domain", "Served from", "Access"], rows),
        f"<p class=muted>Open {_code(f'{host}/NAME')} in a browser to see a repository's tags.</p>",
        _how_to_pull(origin, f"{host}/{prefix}NAME"),
    )


def _how_to_pull(origin: Origin, reference: str) -> str:
    """How each client people use names an image here."""
    host = origin.host
    # ctr assumes https unless told; the hosts.toml's scheme tells CRI and nerdctl.
    plain_http = " --plain-http" if origin.scheme == "http" else ""
    hosts_toml = f'server = "{origin}"\n\n[host."{origin}"]\n  capabilities = ["pull", "resolve"]'
    return "".join(
        [
            "<h2>How to pull</h2>",
            "<p>Docker</p>",
            _copyable(f"docker pull {reference}:TAG"),
            "<p>Podman</p>",
            _copyable(f"podman pull {reference}:TAG"),
            "<p>containerd: <code>ctr</code> asks the domain itself; CRI and nerdctl read ",
            f"{_code(f'/etc/containerd/certs.d/{host}/hosts.toml')}</p>",
            _copyable(f"ctr image pull{plain_http} {reference}:TAG"),
            _copyable(hosts_toml),
            "<p>Helm charts (OCI)</p>",
            _copyable(f"helm install RELEASE oci://{reference} --version VERSION"),
            "<p>cosign, for a signed image (or <code>--certificate-identity</code> and ",
            "<code>--certificate-oidc-issuer</code> for a keyless signature)</p>",
            _copyable(_cosign_verify(f"{reference}:TAG")),
        ]
    )


def _cosign_verify(reference: str) -> str:
    return f"cosign verify --key cosign.pub {reference}"


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
        mirrors = "; ".join(_served_from(mirror) for mirror in route.mirror_routes)
        shown += f" (when it fails: {mirrors})"
    if route.fallback is None:
        return shown
    return f"{shown}, then {_served_from(route.fallback)}"


def _repository(
    host: str,
    name: RepositoryName,
    route: Route,
    fallback: Route | None,
    listing: TagListing,
    details: list[TagDetails],
) -> str:
    reference = f"{host}/{name.value}"
    # cosign's own tags name a digest, not an image people pull: counted, not listed.
    cosign_tags = sum(1 for tag in set(listing.tags) if is_cosign_tag(tag))
    ordered = [tag for tag in newest_first(listing.tags) if not is_cosign_tag(tag)]
    shown = ordered[:MAX_TAGS_SHOWN]
    first = details[0].tag if details else shown[0] if shown else "TAG"
    if listing.problem is not None:
        body = f"<p class=notice>{escape(listing.problem)}</p>"
    elif not listing.tags:
        body = "<p class=muted>No tags yet.</p>"
    else:
        body = _details(reference, details)
        if route.upstream.origin.is_docker_hub:
            body += (
                "<p class=muted>Docker Hub counts each manifest read against a pull limit, so "
                "this page shows no digests, sizes or signatures: Docker Hub's own page has "
                "them.</p>"
            )
        rows = [[_code(tag), _copyable_code(f"docker pull {reference}:{tag}")] for tag in shown]
        count = f"{len(ordered)}+" if listing.truncated else str(len(ordered))
        body += f"<h2>Tags ({count})</h2>" + _table(["Tag", "Pull"], rows)
        if len(ordered) > len(shown):
            body += f"<p class=muted>and {len(ordered) - len(shown)} more, not shown.</p>"
        if cosign_tags:
            body += (
                f"<p class=muted>and {cosign_tags} of cosign's signature, attestation and SBOM "
                f"tags ({_code('sha256-HEX.sig')}), not listed.</p>"
            )
        if listing.truncated:
            body += (
                f"<p class=muted>The registry has more tags than this page reads "
                f"({MAX_TAG_LIST_PAGES} pages); list them all with "
                f"{_code(f'skopeo list-tags docker://{reference}')}.</p>"
            )
    source = _code(f"{route.upstream.host}/{route.to_upstream(name).value}")
    mirrors = mirrors_for(route, Endpoint(Kind.TAGS, name))
    if mirrors:
        places = ", then ".join(
            _code(f"{mirror.upstream.host}/{mirror.to_upstream(name).value}") for mirror in mirrors
        )
        source += f" (when it fails, from {places})"
    if fallback is not None:
        source += ", and what is not there yet from " + _code(
            f"{fallback.upstream.host}/{fallback.to_upstream(name).value}"
        )
    pull = "" if listing.status == 404 else _copyable(f"docker pull {reference}:{first}")
    return _document(
        reference,
        f"<h1>{escape(reference)}</h1>",
        f"<p class=lead>Served from {source}</p>",
        pull,
        body,
        f'<p><a href="/">All of {escape(host)}</a></p>',
    )


def _details(reference: str, details: list[TagDetails]) -> str:
    """The tags people look for first, with what their manifests say, and how to verify the
    signed ones."""
    if not details:
        return ""
    rows = []
    for tag in details:
        image = tag.details
        if image is None:
            problem = f"<span class=muted>details unavailable: {escape(tag.problem or '')}</span>"
            rows.append([_code(tag.tag), problem, "", "", "", ""])
            continue
        digest = image.digest.value
        size = "" if image.size is None else _size(image.size)
        if size and image.size_platform:
            size += f" <span class=muted>({escape(image.size_platform)})</span>"
        built = (
            ""
            if image.created is None
            else f'<time datetime="{image.created.isoformat()}">{image.created:%Y-%m-%d}</time>'
        )
        signed = {True: "<span class=signed>signed</span>", False: "no", None: ""}[tag.signed]
        rows.append(
            [
                _code(tag.tag),
                f'<code class=digest title="{escape(digest)}">{escape(digest[:19])}…</code>',
                escape(", ".join(image.platforms)),
                size,
                built,
                signed,
            ]
        )
    table = _table(["Tag", "Digest", "Platforms", "Compressed size", "Built", "Signature"], rows)
    signed_tags = [tag.tag for tag in details if tag.signed]
    verify = ""
    if signed_tags:
        verify = (
            "<p>Signed with cosign; verify with the signer's public key (or "
            "<code>--certificate-identity</code> and <code>--certificate-oidc-issuer</code> "
            "for a keyless signature):</p>"
        ) + "".join(_copyable(_cosign_verify(f"{reference}:{tag}")) for tag in signed_tags)
    return "<h2>Latest tags</h2>" + table + verify


def _size(size: int) -> str:
    """A size as registries' pages show one: decimal units, three figures."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} B"


def _not_found(host: str, path: str, reason: str) -> str:
    return _document(
        f"Not found: {path}",
        "<h1>Not found</h1>",
        f"<p>{escape(path)} is not an image name here: {escape(reason)}.</p>",
        f'<p><a href="/">All of {escape(host)}</a></p>',
    )
