"""The registry endpoint: `/v2/...` requests mapped onto their route's upstream and forwarded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from .challenge import parse_challenges, rewrite_challenges
from .config import Settings
from .edge_cache import BASE_CACHE_CONTROL, set_edge_caching
from .endpoints import (
    MAX_TAG_LIST_BYTES,
    READ_METHODS,
    UPLOAD_KINDS,
    Endpoint,
    Kind,
    check_method,
    parse_endpoint,
)
from .errors import MalformedHeaderError, UpstreamError
from .failover import (
    Served,
    circuits,
    may_fail_over,
    mirrors_for,
    send_with_failover,
)
from .fallback import (
    TagListQuery,
    may_ask_fallback,
    next_page_link,
    tag_names,
    tag_page,
    unknown_here,
)
from .header_filters import client_response_headers, upstream_request_headers
from .links import next_page, rewrite_link, rewrite_location, same_list
from .messages import FallbackAnswer, Headers, MirrorAnswer, Request, Response
from .names import Digest, RepositoryName, vanity_name_of
from .routing import Route
from .scope import Scope
from .token_endpoint import token_url
from .upstream import UpstreamRequest
from .upstream_auth import send_authorized, send_with_client_login
from .upstream_response import UpstreamResponse
from .urls import URL

# Registry errors are a few hundred bytes; larger bodies pass on as they are.
MAX_ERROR_BYTES = 64 * 1024


def serve_registry(request: Request, settings: Settings) -> Response:
    """A registry API request: parsed, routed, sent upstream as the route's name, and its
    answer rewritten back into the client's names."""
    endpoint = parse_endpoint(request.path)
    check_method(endpoint, request.method, push=settings.allow_push)
    route = _route_of(endpoint, settings)
    if endpoint.kind is Kind.BASE and route.public:
        return _public_base()
    crev_authorizes = _crev_authorizes(request, endpoint, route)
    fallback = may_ask_fallback(route, endpoint, request.method, crev_authorizes)
    tag_seconds = settings.tag_cache_seconds if route.public and crev_authorizes else 0
    if fallback and endpoint.kind is Kind.TAGS:
        return _tag_list_of_both(request, settings, route, endpoint, tag_seconds)
    if may_fail_over(route, endpoint, request.method, crev_authorizes):
        return _read_failing_over(request, settings, route, endpoint, fallback, tag_seconds)
    forwarded, mount_from = _upstream_request(request, endpoint, settings, route, crev_authorizes)
    if crev_authorizes:
        scopes = _server_scopes(route, endpoint, request.method, mount_from)
        answer = send_authorized(forwarded, route, scopes, settings.timeout)
    else:
        answer = send_with_client_login(forwarded, route, settings.timeout)
    if fallback:
        return _answer_or_fallback(
            request, settings, route, endpoint, forwarded, answer, tag_seconds
        )
    return _client_response(
        request, settings, route, endpoint, forwarded, answer, crev_authorizes, tag_seconds
    )


class _Sent(NamedTuple):
    """A read as one upstream was asked it, and its answer."""

    forwarded: UpstreamRequest
    answer: UpstreamResponse

    @property
    def status(self) -> int:
        return self.answer.status

    def release(self) -> None:
        self.answer.release()


def _read_failing_over(
    request: Request,
    settings: Settings,
    route: Route,
    endpoint: Endpoint,
    fallback: bool,
    tag_seconds: int,
) -> Response:
    """A read on a route with mirrors: the primary's answer, or when it fails, a mirror's,
    answered as the route's own (and, when it does not know the name, the fallback's)."""

    def send(upstream: Route) -> _Sent:
        forwarded, _ = _upstream_request(request, endpoint, settings, upstream, True)
        scopes = _server_scopes(upstream, endpoint, request.method, None)
        return _Sent(forwarded, send_authorized(forwarded, upstream, scopes, settings.timeout))

    served = send_with_failover(
        route, mirrors_for(route, endpoint), send, circuits(), settings.failover_seconds
    )
    sent = served.answer
    if fallback:
        response = _answer_or_fallback(
            request, settings, route, endpoint, sent.forwarded, sent.answer, tag_seconds, served
        )
    else:
        response = _client_response(
            request,
            settings,
            served.route,
            endpoint,
            sent.forwarded,
            sent.answer,
            True,
            tag_seconds,
        )
    return _from_mirror(response, route, served, sent.status)


def _from_mirror(
    response: Response, route: Route, served: Served[_Sent] | Served[_TagsAnswer], status: int
) -> Response:
    """A mirror's answer as the route's own: the log line names the primary's failure and the
    mirror, and a route whose clients never log in (crev's server-side credentials) shows no
    challenge."""
    if served.primary_failure is None:
        return response
    response.mirror = MirrorAnswer(served.primary_failure, served.route.upstream.host, status)
    if route.credentials is not None:
        response.headers.remove("WWW-Authenticate")
    return response


def _route_of(endpoint: Endpoint, settings: Settings) -> Route:
    if endpoint.name is None:
        return settings.routes.default
    return settings.routes.for_name(endpoint.name)


def _crev_authorizes(request: Request, endpoint: Endpoint, route: Route) -> bool:
    """Whether crev authenticates upstream itself, rather than passing on the client's login."""
    write = request.method not in READ_METHODS or endpoint.kind in UPLOAD_KINDS
    return route.crev_authorizes(write=write, client_authorized="authorization" in request.headers)


def _answer_or_fallback(
    request: Request,
    settings: Settings,
    route: Route,
    endpoint: Endpoint,
    forwarded: UpstreamRequest,
    answer: UpstreamResponse,
    tag_seconds: int,
    served: Served[_Sent] | None = None,
) -> Response:
    """The primary's answer (or, where it failed, its mirror's: `served`), unless it does not
    know the name, tag or blob: then the fallback's, which the log line names."""
    answered_by = route if served is None else served.route
    read = _read_refusal(answer, settings.timeout)
    if not unknown_here(answer.status, request.method, read.body):
        return _client_response(
            request, settings, answered_by, endpoint, forwarded, read, True, tag_seconds
        )
    read.release()
    fallback = route.fallback
    assert fallback is not None
    asked, _ = _upstream_request(request, endpoint, settings, fallback, True)
    scopes = _server_scopes(fallback, endpoint, request.method, None)
    answered = send_authorized(asked, fallback, scopes, settings.timeout)
    response = _client_response(
        request, settings, fallback, endpoint, asked, answered, True, tag_seconds
    )
    return _from_fallback(response, route, answer.status)


def _from_fallback(response: Response, route: Route, primary_status: int) -> Response:
    """The fallback's answer as the route's own: the log line names both upstreams, and a
    route whose clients never log in (crev's server-side credentials) shows no challenge."""
    assert route.fallback is not None
    response.fallback = FallbackAnswer(route.fallback.upstream.host, response.upstream_status or 0)
    response.upstream_status = primary_status
    if route.credentials is not None:
        response.headers.remove("WWW-Authenticate")
    return response


class _ReadAnswer:
    """An upstream's answer whose small error body crev has read already, to see its code;
    answered on like any other."""

    __slots__ = ("_answer", "body", "headers", "method", "status")

    def __init__(self, answer: UpstreamResponse, body: bytes | None) -> None:
        self._answer = answer
        self.body = body
        self.status = answer.status
        self.headers = answer.headers
        self.method = answer.method

    def read(self, limit: int, timeout: float) -> bytes:
        return self.body if self.body is not None else self._answer.read(limit, timeout)

    def stream(self) -> Iterator[bytes]:
        return iter([self.body]) if self.body is not None else self._answer.stream()

    def release(self) -> None:
        if self.body is None:
            self._answer.release()

    @property
    def has_body(self) -> bool:
        return self._answer.has_body

    def close(self) -> None:
        self._answer.close()


def _read_refusal(answer: UpstreamResponse, timeout: float) -> _ReadAnswer:
    """The answer, with its body read when it is a small registry error to a GET."""
    if (
        answer.status >= 400
        and answer.method == "GET"
        and _is_small_json_error(answer.status, answer.headers)
    ):
        return _ReadAnswer(answer, answer.read(MAX_ERROR_BYTES, timeout))
    return _ReadAnswer(answer, None)


def _tag_list_of_both(
    request: Request, settings: Settings, route: Route, endpoint: Endpoint, tag_seconds: int
) -> Response:
    """The tag list of a route with a fallback: the union of both upstreams' tags, paginated
    by crev. An answer of either that is neither a list nor "not here" stands as it is."""
    query = TagListQuery.parse(request.query)
    served = send_with_failover(
        route,
        mirrors_for(route, endpoint),
        lambda upstream: _TagsAnswer(_all_tags(request, settings, upstream, endpoint)),
        circuits(),
        settings.failover_seconds,
    )
    primary = served.answer.tags
    if isinstance(primary, Response):
        return _from_mirror(primary, route, served, primary.status)
    return _from_mirror(
        _union_of_tags(request, route, endpoint, tag_seconds, query, primary, settings),
        route,
        served,
        primary.status,
    )


def _union_of_tags(
    request: Request,
    route: Route,
    endpoint: Endpoint,
    tag_seconds: int,
    query: TagListQuery,
    primary: _Tags,
    settings: Settings,
) -> Response:
    """The tag list of the primary (or its mirror) and the fallback together."""
    fallback = route.fallback
    assert fallback is not None
    secondary = _all_tags(request, settings, fallback, endpoint)
    if primary.tags is None and (isinstance(secondary, Response) or secondary.tags is None):
        # The primary does not know the name: the fallback's answer is the client's.
        answered = secondary if isinstance(secondary, Response) else secondary.refusal
        assert answered is not None
        return _from_fallback(answered, route, primary.status)
    if isinstance(secondary, Response):
        if secondary.status not in _NOTHING_TO_ADD:
            return _from_fallback(secondary, route, primary.status)
        # Left out of the union: an answer not read to its end would hold its connection.
        secondary.close()
    tags = (primary.tags or []) + ([] if isinstance(secondary, Response) else secondary.tags or [])
    page = tag_page(tags, query)
    assert endpoint.name is not None
    body = json.dumps({"name": endpoint.name.value, "tags": page.tags}, separators=(",", ":"))
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Docker-Distribution-API-Version", "registry/2.0"),
        ]
    )
    if page.following is not None and query.n is not None:
        headers.set("Link", next_page_link(request.path, query.n, page.following))
    set_edge_caching(headers, endpoint, request.method, 200, tag_seconds)
    # A HEAD gets the same head, and h11 sends no body with it.
    response = Response.from_bytes(200, headers, body.encode(), secondary.status)
    return _from_fallback(response, route, primary.status)


# A fallback's refusals that mean it has no tags the route may show, next to the primary's: it
# keeps the name private (Docker Hub answers so for a name it does not have, too).
_NOTHING_TO_ADD = frozenset({401, 403})
# Pages of one upstream's tag list crev follows to make the union.
MAX_TAG_LIST_PAGES = 100


class _Tags(NamedTuple):
    status: int
    # None: the upstream does not know the name.
    tags: list[str] | None
    # What it said instead of a list, answered when the other has none either.
    refusal: Response | None = None


class _TagsAnswer(NamedTuple):
    """One upstream's whole tag list (or its answer instead), as failover weighs an answer."""

    tags: _Tags | Response

    @property
    def status(self) -> int:
        return self.tags.status

    def release(self) -> None:
        if isinstance(self.tags, Response):
            self.tags.close()
        elif self.tags.refusal is not None:
            self.tags.refusal.close()


def _all_tags(
    request: Request, settings: Settings, route: Route, endpoint: Endpoint
) -> _Tags | Response:
    """Every tag of the name on one upstream, following its pages on the same list; or its
    answer when that is not a list (a 404 saying the name is unknown is a _Tags of None)."""
    url = route.upstream.url(endpoint.upstream_path(route))
    scopes = _server_scopes(route, endpoint, "GET", None)
    tags: list[str] = []
    for _ in range(MAX_TAG_LIST_PAGES):
        headers = Headers([("Accept", "application/json"), ("Accept-Encoding", "identity")])
        forwarded = UpstreamRequest("GET", url, headers)
        answer = send_authorized(forwarded, route, scopes, settings.timeout)
        if answer.status != 200:
            read = _read_refusal(answer, settings.timeout)
            refusal = _client_response(request, settings, route, endpoint, forwarded, read, True)
            if unknown_here(answer.status, "GET", read.body):
                return _Tags(answer.status, None, refusal)
            return refusal
        tags += tag_names(answer.read(MAX_TAG_LIST_BYTES, settings.timeout))
        link = answer.headers.get("link")
        try:
            following = next_page(link, url) if link else None
        except MalformedHeaderError as error:
            raise UpstreamError(
                f"upstream {route.upstream.host} sent a malformed header: {error}"
            ) from None
        if following is None:
            return _Tags(200, tags)
        next_url = same_list(following, url)
        if next_url is None:
            raise UpstreamError(
                f"upstream {route.upstream.host} links its tag list's next page elsewhere"
            )
        url = next_url
    raise UpstreamError(
        f"upstream {route.upstream.host} has more than {MAX_TAG_LIST_PAGES} pages of tags"
    )


def _upstream_request(
    request: Request, endpoint: Endpoint, settings: Settings, route: Route, crev_authorizes: bool
) -> tuple[UpstreamRequest, RepositoryName | None]:
    """The request as the upstream is asked it, and the upstream name a cross-repository
    mount reads from."""
    path = endpoint.upstream_path(route)
    query, mount_from = _upstream_query(request, endpoint, settings, route)
    target = path + (f"?{query}" if query else "")
    headers = upstream_request_headers(request.headers, credentials=not crev_authorizes)
    # Only writes carry a body upstream; one sent with a read is left unread (and the
    # connection closed after the answer).
    body = request.stream_body(settings.max_body_bytes) if request.method in _BODY_METHODS else None
    if body is not None and request.content_length is not None:
        headers.set("Content-Length", str(request.content_length))
    if endpoint.kind is Kind.TAGS:
        # crev reads a tag list itself, and a coding a client may ask for (br, zstd) could be
        # one it cannot read.
        headers.set("Accept-Encoding", "identity")
    return UpstreamRequest(request.method, route.upstream.url(target), headers, body), mount_from


def _client_response(
    request: Request,
    settings: Settings,
    route: Route,
    endpoint: Endpoint,
    forwarded: UpstreamRequest,
    answer: UpstreamResponse | _ReadAnswer,
    crev_authorizes: bool,
    tag_seconds: int = 0,
) -> Response:
    """The upstream's answer as the client gets it: headers rewritten to vanity names and
    crev's token endpoint, and the bodies that name repositories rewritten too."""
    try:
        headers = _client_headers(request, settings, route, forwarded.url, answer.headers)
    except MalformedHeaderError as error:
        answer.close()
        raise UpstreamError(
            f"upstream {route.upstream.host} sent a malformed header: {error}"
        ) from None
    if crev_authorizes:
        set_edge_caching(headers, endpoint, request.method, answer.status, tag_seconds)
    if _is_tag_list(endpoint, request, answer.status):
        body = _vanity_tag_list(answer.read(MAX_TAG_LIST_BYTES, settings.timeout), endpoint)
        headers.remove("Content-Encoding")
        return Response.from_bytes(answer.status, headers, body, answer.status)
    if not answer.has_body:
        # Read to its end, so that its connection goes back to the pool.
        answer.release()
        return Response(answer.status, headers, (), answer.status)
    if _is_small_json_error(answer.status, headers):
        body = answer.read(MAX_ERROR_BYTES, settings.timeout)
        headers.remove("Content-Encoding")
        return Response.from_bytes(
            answer.status, headers, _vanity_error(body, route), answer.status
        )
    return Response(answer.status, headers, answer.stream(), answer.status, answer.close)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Query parameters each endpoint passes on; upload session state is opaque and kept exactly.
_QUERY_KINDS = frozenset({Kind.TAGS, Kind.REFERRERS, Kind.UPLOAD})


def _upstream_query(
    request: Request, endpoint: Endpoint, settings: Settings, route: Route
) -> tuple[str, RepositoryName | None]:
    if endpoint.kind in _QUERY_KINDS:
        return request.query, None
    if endpoint.kind is not Kind.UPLOAD_START or not request.query:
        return "", None
    params = parse_qsl(request.query, keep_blank_values=True)
    mount_from: RepositoryName | None = None
    kept: list[tuple[str, str]] = []
    for key, value in params:
        if key == "from":
            source = RepositoryName.parse(value)
            # A mount only works within one registry; elsewhere the client just uploads.
            if settings.routes.for_name(source) == route:
                mount_from = route.to_upstream(source)
        elif key in ("mount", "digest"):
            kept.append((key, Digest.parse(value).value))
    if mount_from is not None:
        kept.append(("from", mount_from.value))
    else:
        kept = [(key, value) for key, value in kept if key != "mount"]
    return urlencode(kept), mount_from


def _public_base() -> Response:
    """`/v2/` of a public route: answered here, with no challenge, so clients never start a
    token dance (and never send an `Authorization` that keeps answers out of the edge cache)."""
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Docker-Distribution-API-Version", "registry/2.0"),
            ("Cache-Control", BASE_CACHE_CONTROL),
        ]
    )
    return Response.from_bytes(200, headers, b"{}")


def _server_scopes(
    route: Route, endpoint: Endpoint, method: str, mount_from: RepositoryName | None
) -> tuple[Scope, ...]:
    if endpoint.name is None:
        return ()
    actions = {"GET": ("pull",), "HEAD": ("pull",), "DELETE": ("delete",)}.get(
        method, ("pull", "push")
    )
    scopes = [Scope.repository(route.to_upstream(endpoint.name), *actions)]
    if mount_from is not None:
        scopes.append(Scope.repository(mount_from, "pull"))
    return tuple(scopes)


def _client_headers(
    request: Request, settings: Settings, route: Route, asked: URL, answer: Headers
) -> Headers:
    headers = client_response_headers(answer)
    headers.items = [
        (name, shown)
        for name, value in headers
        if (shown := _shown_value(name.lower(), value, request, settings, route, asked)) is not None
    ]
    return headers


def _shown_value(
    name: str, value: str, request: Request, settings: Settings, route: Route, asked: URL
) -> str | None:
    """A header's value as the client gets it; None for one it does not get."""
    if name == "www-authenticate":
        challenges = parse_challenges(value)
        if route.credentials is not None:
            # The client has no token to get: crev authenticates upstream on its own.
            return None
        return rewrite_challenges(challenges, token_url(request, settings, route), route)
    if name == "location":
        return rewrite_location(value, asked, route)
    if name == "link":
        return rewrite_link(value, asked, route)
    return value


def _is_tag_list(endpoint: Endpoint, request: Request, status: int) -> bool:
    return endpoint.kind is Kind.TAGS and request.method == "GET" and status == 200


def _vanity_tag_list(body: bytes, endpoint: Endpoint) -> bytes:
    """The tag list with `name` shown as the client's name; other fields untouched."""
    try:
        document = json.loads(body)
    except ValueError:
        raise UpstreamError("upstream tag list is not JSON") from None
    if isinstance(document, dict) and "name" in document and endpoint.name is not None:
        document["name"] = endpoint.name.value
    return json.dumps(document, separators=(",", ":")).encode()


def _is_small_json_error(status: int, headers: Headers) -> bool:
    length = headers.get("content-length") or ""
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    return (
        status >= 400
        and content_type == "application/json"
        and length.isdigit()
        and int(length) <= MAX_ERROR_BYTES
    )


def _vanity_error(body: bytes, route: Route) -> bytes:
    """A registry error with the repository names in its details shown as the client knows
    them (distribution names the upstream repository in a 401's detail), and names outside the
    route dropped: the vanity domain does not show the upstream's layout."""
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or not isinstance(document.get("errors"), list):
        return body
    for error in document["errors"]:
        if isinstance(error, dict) and "detail" in error:
            error["detail"] = _vanity_names(error["detail"], route)
    return json.dumps(document, separators=(",", ":")).encode()


def _vanity_names(detail: object, route: Route) -> object:
    if isinstance(detail, list):
        return [_vanity_names(item, route) for item in detail]
    if not isinstance(detail, dict):
        return detail
    shown: dict[str, object] = {}
    for key, value in detail.items():
        if key.lower() == "name" and isinstance(value, str):
            vanity = vanity_name_of(value, route)
            if vanity is not None:
                shown[key] = vanity.value
        else:
            shown[key] = _vanity_names(value, route)
    return shown
