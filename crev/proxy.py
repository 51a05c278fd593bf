"""The registry endpoint: `/v2/...` requests mapped onto their route's upstream and forwarded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from .config import Settings
from .endpoints import Endpoint, Kind, check_method, parse_endpoint
from .errors import MalformedHeaderError, UpstreamError
from .failover import Served, may_fail_over, mirrors_for, send_with_failover
from .fallback import (
    TagListQuery,
    fallback_for,
    may_ask_fallback,
    next_page_link,
    tag_page,
    unknown_here,
)
from .messages import FallbackAnswer, Headers, MirrorAnswer, Request, Response
from .names import Digest, RepositoryName, vanity_name_of
from .rewrite.challenge import parse_challenges, rewrite_challenges
from .rewrite.edge_cache import BASE_CACHE_CONTROL, set_edge_caching
from .rewrite.header_filters import client_response_headers, upstream_request_headers
from .rewrite.links import REDIRECT_STATUSES, rewrite_link, rewrite_location
from .routing import Route
from .scope import Scope
from .tag_list import MAX_TAG_LIST_BYTES, NotATagList, read_tag_list
from .token_endpoint import token_url
from .upstream.connections import UpstreamRequest
from .upstream.response import HeldAnswer, UpstreamResponse
from .urls import URL

# Registry errors are a few hundred bytes; larger bodies pass on as they are.
MAX_ERROR_BYTES = 64 * 1024
# Methods whose request body goes upstream; one sent with a read is left unread (and the
# connection closed after the answer).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# What a token for each method is asked for; every other method writes.
_ACTIONS = {"GET": ("pull",), "HEAD": ("pull",), "DELETE": ("delete",)}


class Exchange(NamedTuple):
    """One registry API request on its way through crev: what the client asked, the settings,
    the route serving it and the endpoint it addresses, and whether crev authorizes it
    upstream itself. A fallback's part is the same exchange on the fallback's route."""

    request: Request
    settings: Settings
    route: Route
    endpoint: Endpoint
    # crev authenticates upstream itself, rather than passing on the client's login.
    crev_authorizes: bool

    @property
    def tag_seconds(self) -> int:
        """How long the edge may keep an answer by tag: a public route's choice, for answers
        crev got with its own authorization."""
        return self.settings.tag_cache_seconds if self.route.public and self.crev_authorizes else 0

    def on(self, route: Route) -> Exchange:
        return self._replace(route=route, crev_authorizes=True)

    def scopes(self, mount_from: RepositoryName | None = None) -> tuple[Scope, ...]:
        """What crev's own token for this request is asked for on the route's upstream."""
        name = self.endpoint.name
        if name is None:
            return ()
        actions = _ACTIONS.get(self.request.method, ("pull", "push"))
        scopes = [Scope.repository(self.route.to_upstream(name), *actions)]
        if mount_from is not None:
            scopes.append(Scope.repository(mount_from, "pull"))
        return tuple(scopes)


def serve_registry(request: Request, settings: Settings) -> Response:
    """A registry API request: parsed, routed, sent upstream as the route's name, and its
    answer shown back in the client's names."""
    endpoint = parse_endpoint(request.path)
    check_method(endpoint, request.method, push=settings.allow_push)
    route = settings.routes.serving(endpoint.name)
    if endpoint.kind is Kind.BASE and route.public:
        return _public_base()
    client_authorized = "authorization" in request.headers
    crev_authorizes = route.crev_authorizes(
        write=endpoint.writes(request.method), client_authorized=client_authorized
    )
    exchange = Exchange(request, settings, route, endpoint, crev_authorizes)
    fallback = (
        fallback_for(route, endpoint.name)
        if endpoint.name is not None
        and may_ask_fallback(route, endpoint, request.method, crev_authorizes)
        else None
    )
    if fallback is not None and endpoint.kind is Kind.TAGS:
        return _tag_list_of_both(exchange, fallback)
    if may_fail_over(route, endpoint, request.method, crev_authorizes):
        return _read_failing_over(exchange, fallback)
    forwarded, mount_from = _forwarded(exchange)
    if endpoint.kind is Kind.BASE and not client_authorized:
        return _ping_answer(exchange, forwarded)
    if crev_authorizes:
        answer = route.upstream.send(forwarded, exchange.scopes(mount_from))
    else:
        answer = route.upstream.relay(forwarded)
    if fallback is not None:
        return _answer_or_fallback(exchange, fallback, forwarded, answer)
    return _client_response(exchange, forwarded, answer)


def _ping_answer(exchange: Exchange, forwarded: UpstreamRequest) -> Response:
    """A ping that brings no login, answered as the upstream answers one: from what the
    upstream learned when it can (logged with no upstream status), else asked; on a route
    with mirrors, asked of a mirror when the upstream fails, as a read is."""
    route = exchange.route
    known = route.upstream.known_ping(forwarded.method)
    if known is None and exchange.crev_authorizes and route.mirrors:
        return _ping_failing_over(exchange)
    answer = (
        known
        if known is not None
        else route.upstream.ping(forwarded, authorize=exchange.crev_authorizes)
    )
    return _pinged(exchange, forwarded, answer)


def _ping_failing_over(exchange: Exchange) -> Response:
    """A ping on a route with mirrors that no upstream answered yet: the primary's answer, or
    when it fails, a mirror's, shown as the route's own."""

    def ping(route: Route) -> _SentPing:
        asked = exchange.on(route)
        forwarded, _ = _forwarded(asked)
        return _SentPing(asked, forwarded, route.upstream.ping(forwarded, authorize=True))

    route = exchange.route
    served = send_with_failover(
        route, route.mirror_routes, ping, exchange.settings.failover_seconds
    )
    sent = served.answer
    response = _pinged(sent.exchange, sent.forwarded, sent.answer)
    return _from_mirror(response, route, served, sent.status)


class _SentPing(NamedTuple):
    """A ping as one upstream was asked it, and its answer (perhaps from what it learned)."""

    exchange: Exchange
    forwarded: UpstreamRequest
    answer: UpstreamResponse | HeldAnswer

    @property
    def status(self) -> int:
        return self.answer.status

    def release(self) -> None:
        self.answer.release()


def _pinged(
    exchange: Exchange, forwarded: UpstreamRequest, answer: UpstreamResponse | HeldAnswer
) -> Response:
    response = _client_response(exchange, forwarded, answer)
    if isinstance(answer, HeldAnswer) and answer.from_memory:
        response.upstream_status = None
    return response


class _Sent(NamedTuple):
    """A read as one upstream was asked it (the exchange on its route, the request), and its
    answer."""

    exchange: Exchange
    forwarded: UpstreamRequest
    answer: UpstreamResponse

    @property
    def status(self) -> int:
        return self.answer.status

    def release(self) -> None:
        self.answer.release()


def _read_failing_over(exchange: Exchange, fallback: Route | None) -> Response:
    """A read on a route with mirrors: the primary's answer, or when it fails, a mirror's,
    answered as the route's own (and, when it does not know the name, the fallback's)."""

    def send(route: Route) -> _Sent:
        asked = exchange.on(route)
        forwarded, _ = _forwarded(asked)
        return _Sent(asked, forwarded, route.upstream.send(forwarded, asked.scopes()))

    route = exchange.route
    served = send_with_failover(
        route,
        mirrors_for(route, exchange.endpoint),
        send,
        exchange.settings.failover_seconds,
    )
    sent = served.answer
    if fallback is not None:
        response = _answer_or_fallback(sent.exchange, fallback, sent.forwarded, sent.answer)
    else:
        response = _client_response(sent.exchange, sent.forwarded, sent.answer)
    return _from_mirror(response, route, served, sent.status)


def _from_mirror(
    response: Response,
    route: Route,
    served: Served[_Sent] | Served[_SentPing] | Served[_TagsAnswer],
    status: int,
) -> Response:
    """A mirror's answer as the route's own: the log line names the primary's failure and the
    mirror, and a route whose clients never log in (crev's server-side credentials) shows no
    challenge."""
    if served.primary_failure is None:
        return response
    response.mirror = MirrorAnswer(served.primary_failure, served.route.upstream.host, status)
    if route.server_side:
        response.headers.remove("WWW-Authenticate")
    return response


def _answer_or_fallback(
    exchange: Exchange, fallback: Route, forwarded: UpstreamRequest, answer: UpstreamResponse
) -> Response:
    """The primary's answer, unless it does not know the name, tag or blob: then the
    fallback's, which the log line names."""
    read = _with_error_read(answer, exchange.settings.timeout)
    if not unknown_here(answer.status, exchange.request.method, read.body):
        return _client_response(exchange, forwarded, read)
    read.release()
    asked_exchange = exchange.on(fallback)
    asked, _ = _forwarded(asked_exchange)
    answered = fallback.upstream.send(asked, asked_exchange.scopes())
    response = _client_response(asked_exchange, asked, answered)
    return _from_fallback(response, exchange.route, fallback, answer.status)


def _from_fallback(
    response: Response, route: Route, fallback: Route, primary_status: int
) -> Response:
    """The fallback's answer as the route's own: the log line names both upstreams, and a
    route whose clients never log in (crev's server-side credentials) shows no challenge."""
    response.fallback = FallbackAnswer(fallback.upstream.host, response.upstream_status or 0)
    response.upstream_status = primary_status
    if route.server_side:
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


def _with_error_read(answer: UpstreamResponse, timeout: float) -> _ReadAnswer:
    """The answer, with its body read when it is a small registry error to a GET."""
    if (
        answer.status >= 400
        and answer.method == "GET"
        and _is_small_json_error(answer.status, answer.headers)
    ):
        return _ReadAnswer(answer, answer.read(MAX_ERROR_BYTES, timeout))
    return _ReadAnswer(answer, None)


def _tag_list_of_both(exchange: Exchange, fallback: Route) -> Response:
    """The tag list of a route with a fallback: the union of both upstreams' tags, paginated
    by crev. An answer of either that is neither a list nor "not here" stands as it is."""
    route = exchange.route
    query = TagListQuery.parse(exchange.request.query)
    served = send_with_failover(
        route,
        mirrors_for(route, exchange.endpoint),
        lambda upstream: _TagsAnswer(_all_tags(exchange.on(upstream))),
        exchange.settings.failover_seconds,
    )
    primary = served.answer.tags
    if isinstance(primary, Response):
        return _from_mirror(primary, route, served, primary.status)
    union = _union_of_tags(exchange, fallback, primary, query)
    return _from_mirror(union, route, served, primary.status)


def _union_of_tags(
    exchange: Exchange, fallback: Route, primary: _Listed | _Unknown, query: TagListQuery
) -> Response:
    """The tag list of the primary (or its mirror) and the fallback together."""
    request, route = exchange.request, exchange.route
    secondary = _all_tags(exchange.on(fallback))
    if isinstance(primary, _Unknown) and not isinstance(secondary, _Listed):
        # The primary does not know the name: the fallback's answer is the client's.
        answered = secondary if isinstance(secondary, Response) else secondary.answered
        return _from_fallback(answered, route, fallback, primary.status)
    if isinstance(secondary, Response):
        if secondary.status not in _NOTHING_TO_ADD:
            return _from_fallback(secondary, route, fallback, primary.status)
        # Left out of the union: an answer not read to its end would hold its connection.
        secondary.close()
    tags = [*_tags_of(primary), *_tags_of(secondary)]
    page = tag_page(tags, query)
    name = exchange.endpoint.name.value if exchange.endpoint.name else ""
    body = json.dumps({"name": name, "tags": page.tags}, separators=(",", ":"))
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Docker-Distribution-API-Version", "registry/2.0"),
        ]
    )
    if page.following is not None and query.n is not None:
        headers.set("Link", next_page_link(request.path, query.n, page.following))
    set_edge_caching(headers, exchange.endpoint, request.method, 200, exchange.tag_seconds)
    # A HEAD gets the same head, and h11 sends no body with it.
    response = Response.from_bytes(200, headers, body.encode(), secondary.status)
    return _from_fallback(response, route, fallback, primary.status)


# A fallback's answers that mean it has no tags the route may show, next to the primary's: it
# keeps the name private (Docker Hub answers so for a name it does not have, too).
_NOTHING_TO_ADD = frozenset({401, 403})


class _Listed(NamedTuple):
    """The name's tags on one upstream."""

    tags: list[str]
    status: int = 200


class _Unknown(NamedTuple):
    """An upstream's word that it does not know the name, and what it answered: the client's
    answer when the other upstream has no list either."""

    status: int
    answered: Response


class _TagsAnswer(NamedTuple):
    """One upstream's whole tag list (or its answer instead), as failover weighs an answer."""

    tags: _Listed | _Unknown | Response

    @property
    def status(self) -> int:
        return self.tags.status

    def release(self) -> None:
        if isinstance(self.tags, Response):
            self.tags.close()
        elif isinstance(self.tags, _Unknown):
            self.tags.answered.close()


def _tags_of(listed: _Listed | _Unknown | Response) -> list[str]:
    return listed.tags if isinstance(listed, _Listed) else []


def _all_tags(exchange: Exchange) -> _Listed | _Unknown | Response:
    """Every tag of the name on the exchange's upstream, or its answer when that is not a
    list. A list crev could not read to its end is a 502: a client's tag list is never
    partial."""
    route = exchange.route
    url = route.upstream.url(exchange.endpoint.upstream_path(route))
    listed = read_tag_list(route.upstream, url, exchange.scopes())
    if isinstance(listed, NotATagList):
        read = _with_error_read(listed.answer, exchange.settings.timeout)
        answered = _client_response(exchange, listed.request, read)
        if unknown_here(listed.answer.status, "GET", read.body):
            return _Unknown(listed.answer.status, answered)
        return answered
    if listed.cut is not None:
        raise UpstreamError(listed.cut)
    return _Listed(listed.tags)


def _forwarded(exchange: Exchange) -> tuple[UpstreamRequest, RepositoryName | None]:
    """The request as the upstream is asked it, and the upstream name a cross-repository
    mount reads from."""
    request, route, endpoint = exchange.request, exchange.route, exchange.endpoint
    path = endpoint.upstream_path(route)
    query, mount_from = _upstream_query(exchange)
    target = path + (f"?{query}" if query else "")
    headers = upstream_request_headers(request.headers, credentials=not exchange.crev_authorizes)
    body = (
        request.stream_body(exchange.settings.max_body_bytes)
        if request.method in _BODY_METHODS
        else None
    )
    if body is not None and request.content_length is not None:
        headers.set("Content-Length", str(request.content_length))
    if endpoint.kind is Kind.TAGS:
        # crev reads a tag list itself, and a coding a client may ask for (br, zstd) could be
        # one it cannot read.
        headers.set("Accept-Encoding", "identity")
    return UpstreamRequest(request.method, route.upstream.url(target), headers, body), mount_from


def _client_response(
    exchange: Exchange,
    forwarded: UpstreamRequest,
    answer: UpstreamResponse | _ReadAnswer | HeldAnswer,
) -> Response:
    """The upstream's answer as the client gets it: its headers showing vanity names and
    crev's token endpoint, and the bodies that name repositories showing them too."""
    request, endpoint, timeout = exchange.request, exchange.endpoint, exchange.settings.timeout
    is_blob_redirect = endpoint.kind is Kind.BLOB and answer.status in REDIRECT_STATUSES
    if is_blob_redirect and exchange.route.follow_redirects:
        followed = _from_storage(exchange, forwarded, answer)
        if followed is not None:
            return followed
    try:
        headers = _client_headers(exchange, forwarded.url, answer.headers)
    except MalformedHeaderError as error:
        answer.close()
        raise UpstreamError(
            f"upstream {exchange.route.upstream.host} sent a malformed header: {error}"
        ) from None
    if exchange.crev_authorizes:
        set_edge_caching(headers, endpoint, request.method, answer.status, exchange.tag_seconds)
        if is_blob_redirect:
            # Imported on a blob's redirect: a cold start that serves none never pays for it.
            from .rewrite.storage_redirect import keep_at_edge

            client_authorized = "authorization" in request.headers
            status = keep_at_edge(
                answer.status, request.method, client_authorized, headers, time.time()
            )
            if status != answer.status:
                answer.release()
                return Response.from_bytes(status, headers, b"", answer.status)
    if endpoint.kind is Kind.TAGS and request.method == "GET" and answer.status == 200:
        body = _vanity_tag_list(answer.read(MAX_TAG_LIST_BYTES, timeout), endpoint)
        headers.remove("Content-Encoding")
        return Response.from_bytes(answer.status, headers, body, answer.status)
    if not answer.has_body:
        # Read to its end, so that its connection goes back to the pool.
        answer.release()
        return Response(answer.status, headers, (), answer.status)
    if _is_small_json_error(answer.status, headers):
        body = answer.read(MAX_ERROR_BYTES, timeout)
        headers.remove("Content-Encoding")
        return Response.from_bytes(
            answer.status, headers, _vanity_error(body, exchange.route), answer.status
        )
    return Response(answer.status, headers, answer.stream(), answer.status, answer.close)


def _from_storage(
    exchange: Exchange,
    forwarded: UpstreamRequest,
    answer: UpstreamResponse | _ReadAnswer | HeldAnswer,
) -> Response | None:
    """A blob the upstream redirected to storage, read from there by crev (a route that follows
    redirects); None when the redirect is not to storage."""
    from .rewrite.storage_redirect import follow  # as keep_at_edge, on a blob's redirect only

    request, endpoint = exchange.request, exchange.endpoint
    if not isinstance(endpoint.reference, Digest):
        # Only a blob read is followed, and a blob is named by its digest.
        return None
    upstream = exchange.route.upstream
    response = follow(request, answer, forwarded.url, str(endpoint.reference), upstream)
    if response is not None and exchange.crev_authorizes:
        set_edge_caching(response.headers, endpoint, request.method, response.status)
    return response


def _upstream_query(exchange: Exchange) -> tuple[str, RepositoryName | None]:
    request, route, endpoint = exchange.request, exchange.route, exchange.endpoint
    if endpoint.kind.facts.passes_query:
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
            if exchange.settings.routes.for_name(source) == route:
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


def _client_headers(exchange: Exchange, asked: URL, answer: Headers) -> Headers:
    return client_response_headers(answer).filtered(
        lambda name, value: _shown_value(exchange, name.lower(), value, asked)
    )


def _shown_value(exchange: Exchange, name: str, value: str, asked: URL) -> str | None:
    """A header's value as the client gets it; None for one it does not get."""
    route = exchange.route
    if name == "www-authenticate":
        challenges = parse_challenges(value)
        if route.server_side:
            # The client has no token to get: crev authenticates upstream on its own.
            return None
        realm = token_url(exchange.request, exchange.settings, route)
        return rewrite_challenges(challenges, realm, route)
    if name == "location":
        return rewrite_location(value, asked, route)
    if name == "link":
        return rewrite_link(value, asked, route)
    return value


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
