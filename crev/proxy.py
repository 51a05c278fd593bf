"""The registry endpoint: `/v2/...` requests mapped onto their route's upstream and forwarded."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

from .challenge import rewrite_challenge
from .config import Settings
from .edge_cache import BASE_CACHE_CONTROL, set_edge_caching
from .endpoints import READ_METHODS, UPLOAD_KINDS, Endpoint, Kind, check_method, parse_endpoint
from .errors import ErrorCode, RegistryError, upstream_unavailable
from .forwarding import client_response_headers, upstream_request_headers
from .links import rewrite_link, rewrite_location
from .messages import Headers, Request, Response
from .names import RepositoryName, parse_digest
from .params import MalformedHeaderError
from .realm import learn_token_service, token_endpoint
from .routing import Route
from .upstream import UpstreamResponse, iter_body, read_body, release, send
from .upstream_auth import forget_token, server_authorization

# Tag lists are rewritten in memory; one this large is not a real tag list.
MAX_TAG_LIST_BYTES = 16 * 1024 * 1024
# Registry errors are a few hundred bytes; larger bodies pass on as they are.
MAX_ERROR_BYTES = 64 * 1024


def serve_registry(request: Request, settings: Settings) -> Response:
    endpoint = parse_endpoint(request.path)
    check_method(endpoint, request.method, push=settings.allow_push)
    route = (
        settings.routes.default
        if endpoint.name is None
        else settings.routes.for_name(endpoint.name)
    )
    write = request.method not in READ_METHODS or endpoint.kind in UPLOAD_KINDS
    for_clients = route.pulls_for_clients(
        write=write, client_authorized="authorization" in request.headers
    )
    if endpoint.kind is Kind.BASE and route.public:
        return _public_base()
    path = endpoint.upstream_path(route)
    query, mount_from = _upstream_query(request, endpoint, settings)
    url = route.upstream.url(path) + (f"?{query}" if query else "")
    upstream = _send(request, settings, route, endpoint, url, mount_from, for_clients)
    try:
        headers = _client_headers(request, settings, route, url, upstream.headers)
    except MalformedHeaderError as error:
        release(upstream)
        raise upstream_unavailable(
            f"upstream {route.upstream.host} sent a malformed header: {error}"
        ) from None
    if for_clients:
        set_edge_caching(headers, endpoint, request.method, upstream.status)
    if _is_tag_list(endpoint, request, upstream.status):
        body = _vanity_tag_list(read_body(upstream, MAX_TAG_LIST_BYTES, settings.timeout), endpoint)
        headers.remove("Content-Encoding")
        return Response.from_bytes(upstream.status, headers, body, upstream.status)
    if request.method == "HEAD":
        release(upstream)
        return Response(upstream.status, headers, (), upstream.status)
    if _is_small_json_error(upstream.status, headers):
        body = read_body(upstream, MAX_ERROR_BYTES, settings.timeout)
        headers.remove("Content-Encoding")
        return Response.from_bytes(
            upstream.status, headers, _vanity_error(body, route), upstream.status
        )
    return Response(
        upstream.status,
        headers,
        iter_body(upstream),
        upstream.status,
        upstream.close,
    )


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Query parameters each endpoint passes on; upload session state is opaque and kept exactly.
_QUERY_KINDS = frozenset({Kind.TAGS, Kind.REFERRERS, Kind.UPLOAD})


def _upstream_query(
    request: Request, endpoint: Endpoint, settings: Settings
) -> tuple[str, RepositoryName | None]:
    """The query to send upstream, and the upstream name a cross-repository mount reads from."""
    if endpoint.kind in _QUERY_KINDS:
        return request.query, None
    if endpoint.kind is not Kind.UPLOAD_START or not request.query:
        return "", None
    assert endpoint.name is not None
    route = settings.routes.for_name(endpoint.name)
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
            kept.append((key, parse_digest(value)))
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


def _send(
    request: Request,
    settings: Settings,
    route: Route,
    endpoint: Endpoint,
    url: str,
    mount_from: RepositoryName | None,
    for_clients: bool,
) -> UpstreamResponse:
    headers = upstream_request_headers(request.headers, credentials=not for_clients)
    if endpoint.kind is Kind.TAGS:
        headers.set("Accept-Encoding", "identity")
    # Only writes carry a body upstream; one sent with a read is left unread (and the
    # connection closed after the answer).
    body = request.stream_body(settings.max_body_bytes) if request.method in _BODY_METHODS else None
    if body is not None and request.content_length is not None:
        headers.set("Content-Length", str(request.content_length))
    if not for_clients:
        return send(request.method, url, headers, settings.timeout, body)
    scopes = _server_scopes(route, endpoint, request.method, mount_from)
    _authorize(headers, server_authorization(route, scopes, settings.timeout))
    upstream = send(request.method, url, headers, settings.timeout, body)
    # A cached token the upstream no longer accepts is replaced once; a body can be sent only
    # once, and a static token cannot be replaced at all.
    static = route.credentials is not None and route.credentials.token
    if upstream.status == 401 and body is None and not static:
        release(upstream)
        challenge = upstream.headers.get("www-authenticate")
        if challenge:
            learn_token_service(route.upstream, challenge)
        forget_token(route, scopes)
        _authorize(headers, server_authorization(route, scopes, settings.timeout))
        upstream = send(request.method, url, headers, settings.timeout)
    return upstream


def _authorize(headers: Headers, authorization: str | None) -> None:
    if authorization is None:
        headers.remove("Authorization")
    else:
        headers.set("Authorization", authorization)


def _server_scopes(
    route: Route, endpoint: Endpoint, method: str, mount_from: RepositoryName | None
) -> list[str]:
    if endpoint.name is None:
        return []
    actions = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "pull,push")
    scopes = [f"repository:{route.to_upstream(endpoint.name).value}:{actions}"]
    if mount_from is not None:
        scopes.append(f"repository:{mount_from.value}:pull")
    return scopes


def _client_headers(
    request: Request, settings: Settings, route: Route, url: str, upstream: Headers
) -> Headers:
    headers = client_response_headers(upstream)
    rewritten = Headers()
    for name, value in headers:
        lowered = name.lower()
        if lowered == "www-authenticate":
            learn_token_service(route.upstream, value)
            if route.credentials is not None:
                # The client has no token to get: crev authenticates upstream on its own.
                continue
            value = rewrite_challenge(value, token_endpoint(request, settings, route), route)
        elif lowered == "location":
            value = rewrite_location(value, url, route.upstream, route)
        elif lowered == "link":
            value = rewrite_link(value, url, route.upstream, route)
        rewritten.items.append((name, value))
    return rewritten


def _is_tag_list(endpoint: Endpoint, request: Request, status: int) -> bool:
    return endpoint.kind is Kind.TAGS and request.method == "GET" and status == 200


def _vanity_tag_list(body: bytes, endpoint: Endpoint) -> bytes:
    """The tag list with `name` shown as the client's name; other fields untouched."""
    try:
        document = json.loads(body)
    except ValueError:
        raise RegistryError(502, ErrorCode.UNAVAILABLE, "upstream tag list is not JSON") from None
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
            vanity = route.to_vanity(value)
            if vanity is not None:
                shown[key] = vanity.value
        else:
            shown[key] = _vanity_names(value, route)
    return shown
