"""The registry endpoint: `/v2/...` requests mapped under the prefix and forwarded upstream."""

from __future__ import annotations

import json

from .challenge import rewrite_challenge
from .config import Settings
from .errors import RegistryError, unsupported, upstream_unavailable
from .forwarding import client_response_headers, upstream_request_headers
from .links import rewrite_link, rewrite_location
from .messages import Headers, Request, Response
from .params import MalformedHeaderError
from .realm import learn_realm, token_endpoint
from .routes import READ_METHODS, Endpoint, Kind, parse_endpoint
from .upstream import iter_body, read_body, send

# Tag lists are rewritten in memory; one this large is not a real tag list.
MAX_TAG_LIST_BYTES = 16 * 1024 * 1024


def serve_registry(request: Request, settings: Settings) -> Response:
    endpoint = parse_endpoint(request.path)
    if request.method not in READ_METHODS:
        raise unsupported(
            f"{request.method} is not served: this registry is read-only", 405, "GET, HEAD"
        )
    path = endpoint.upstream_path(settings.namespace)
    query = request.query if endpoint.kind in (Kind.TAGS, Kind.REFERRERS) else ""
    url = settings.upstream.url(path) + (f"?{query}" if query else "")
    headers = upstream_request_headers(request.headers)
    if endpoint.kind is Kind.TAGS:
        headers.set("Accept-Encoding", "identity")
    upstream = send(request.method, url, headers, settings.timeout)
    try:
        response_headers = _client_headers(
            request, settings, url, Headers(upstream.headers.multi_items())
        )
    except MalformedHeaderError as error:
        upstream.close()
        raise upstream_unavailable(
            f"upstream {settings.upstream.host} sent a malformed header: {error}"
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


def _client_headers(request: Request, settings: Settings, url: str, upstream: Headers) -> Headers:
    headers = client_response_headers(upstream)
    rewritten = Headers()
    for name, value in headers:
        lowered = name.lower()
        if lowered == "www-authenticate":
            learn_realm(settings.upstream, value)
            value = rewrite_challenge(value, token_endpoint(request, settings), settings.namespace)
        elif lowered == "location":
            value = rewrite_location(value, url, settings.upstream, settings.namespace)
        elif lowered == "link":
            value = rewrite_link(value, url, settings.upstream, settings.namespace)
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
