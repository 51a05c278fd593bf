"""The registry endpoint: `/v2/...` requests mapped onto their route's upstream and forwarded."""

from __future__ import annotations

import json

import httpx

from .challenge import rewrite_challenge
from .config import Settings
from .endpoints import READ_METHODS, Endpoint, Kind, parse_endpoint
from .errors import RegistryError, unsupported, upstream_unavailable
from .forwarding import client_response_headers, upstream_request_headers
from .links import rewrite_link, rewrite_location
from .messages import Headers, Request, Response
from .params import MalformedHeaderError
from .realm import learn_token_service, token_endpoint
from .routing import Route
from .upstream import iter_body, read_body, send
from .upstream_auth import forget_token, server_authorization

# Tag lists are rewritten in memory; one this large is not a real tag list.
MAX_TAG_LIST_BYTES = 16 * 1024 * 1024


def serve_registry(request: Request, settings: Settings) -> Response:
    endpoint = parse_endpoint(request.path)
    if request.method not in READ_METHODS:
        raise unsupported(
            f"{request.method} is not served: this registry is read-only", 405, "GET, HEAD"
        )
    route = (
        settings.routes.default
        if endpoint.name is None
        else settings.routes.for_name(endpoint.name)
    )
    path = endpoint.upstream_path(route)
    query = request.query if endpoint.kind in (Kind.TAGS, Kind.REFERRERS) else ""
    url = route.upstream.url(path) + (f"?{query}" if query else "")
    upstream = _send(request, settings, route, endpoint, url)
    try:
        response_headers = _client_headers(
            request, settings, route, url, Headers(upstream.headers.multi_items())
        )
    except MalformedHeaderError as error:
        upstream.close()
        raise upstream_unavailable(
            f"upstream {route.upstream.host} sent a malformed header: {error}"
        ) from None
    if _is_tag_list(endpoint, request, upstream.status_code):
        body = _vanity_tag_list(read_body(upstream, MAX_TAG_LIST_BYTES), endpoint)
        response_headers.remove("Content-Encoding")
        return Response.from_bytes(upstream.status_code, response_headers, body)
    if request.method == "HEAD":
        upstream.close()
        return Response(upstream.status_code, response_headers, (), upstream.status_code)
    return Response(
        upstream.status_code,
        response_headers,
        iter_body(upstream),
        upstream.status_code,
        upstream.close,
    )


def _send(
    request: Request, settings: Settings, route: Route, endpoint: Endpoint, url: str
) -> httpx.Response:
    headers = upstream_request_headers(request.headers, credentials=route.credentials is None)
    if endpoint.kind is Kind.TAGS:
        headers.set("Accept-Encoding", "identity")
    if route.credentials is None:
        return send(request.method, url, headers, settings.timeout)
    scopes = _server_scopes(route, endpoint)
    for attempt in (1, 2):
        headers.set("Authorization", server_authorization(route, scopes, settings.timeout))
        upstream = send(request.method, url, headers, settings.timeout)
        if upstream.status_code != 401 or attempt == 2 or route.credentials.token:
            return upstream
        # A cached token the upstream no longer accepts: fetch a fresh one, once.
        upstream.close()
        challenge = upstream.headers.get("www-authenticate")
        if challenge:
            learn_token_service(route.upstream, challenge)
        forget_token(route, scopes)
    raise AssertionError("unreachable")


def _server_scopes(route: Route, endpoint: Endpoint) -> list[str]:
    if endpoint.name is None:
        return []
    return [f"repository:{route.to_upstream(endpoint.name).value}:pull"]


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
        raise RegistryError(502, "UNAVAILABLE", "upstream tag list is not JSON") from None
    if isinstance(document, dict) and "name" in document and endpoint.name is not None:
        document["name"] = endpoint.name.value
    return json.dumps(document, separators=(",", ":")).encode()
