"""The registry endpoint: `/v2/...` requests mapped onto their route's upstream and forwarded."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

from .challenge import parse_challenges, rewrite_challenges
from .config import Settings
from .edge_cache import BASE_CACHE_CONTROL, set_edge_caching
from .endpoints import READ_METHODS, UPLOAD_KINDS, Endpoint, Kind, check_method, parse_endpoint
from .errors import MalformedHeaderError, UpstreamError
from .forwarding import client_response_headers, upstream_request_headers
from .links import rewrite_link, rewrite_location
from .messages import Headers, Request, Response
from .names import Digest, RepositoryName, vanity_name_of
from .realm import token_endpoint
from .routing import Route
from .scope import Scope
from .upstream import UpstreamRequest, UpstreamResponse
from .upstream_auth import send_authorized, send_with_client_login
from .urls import URL

# Tag lists are rewritten in memory; one this large is not a real tag list.
MAX_TAG_LIST_BYTES = 16 * 1024 * 1024
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
    forwarded, mount_from = _upstream_request(request, endpoint, settings, route, crev_authorizes)
    if crev_authorizes:
        scopes = _server_scopes(route, endpoint, request.method, mount_from)
        answer = send_authorized(forwarded, route, scopes, settings.timeout)
    else:
        answer = send_with_client_login(forwarded, route, settings.timeout)
    return _client_response(request, settings, route, endpoint, forwarded, answer, crev_authorizes)


def _route_of(endpoint: Endpoint, settings: Settings) -> Route:
    if endpoint.name is None:
        return settings.routes.default
    return settings.routes.for_name(endpoint.name)


def _crev_authorizes(request: Request, endpoint: Endpoint, route: Route) -> bool:
    """Whether crev authenticates upstream itself, rather than passing on the client's login."""
    write = request.method not in READ_METHODS or endpoint.kind in UPLOAD_KINDS
    return route.pulls_for_clients(
        write=write, client_authorized="authorization" in request.headers
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
    answer: UpstreamResponse,
    crev_authorizes: bool,
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
        set_edge_caching(headers, endpoint, request.method, answer.status)
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
        return rewrite_challenges(challenges, token_endpoint(request, settings, route), route)
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
