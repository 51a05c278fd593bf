"""The token endpoint: a client's token request, with its scopes put under the prefix,
forwarded to the upstream's own realm.

Scopes are never widened: anything outside the prefix (another resource type, the catalog) is
removed rather than passed on, and the realm asked is the upstream's, never one a client names.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from .config import Settings
from .errors import RegistryError, unsupported
from .forwarding import client_response_headers, upstream_request_headers
from .messages import Headers, Request, Response
from .names import Namespace, RepositoryName
from .realm import upstream_realm
from .scope import Scope, ScopeError, parse_scopes, scope_to_upstream
from .upstream import read_body, send

MAX_FORM_BYTES = 64 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
# A pull asks for a handful of scopes; hundreds is abuse, not a client.
MAX_SCOPES = 64


def serve_token(request: Request, settings: Settings) -> Response:
    if request.method == "GET":
        params = parse_qsl(request.query, keep_blank_values=True)
        mapped = _map_params(params, settings.namespace, one_scope_per_param=True)
        realm = upstream_realm(settings)
        separator = "&" if "?" in realm else "?"
        url = realm + (separator + urlencode(mapped) if mapped else "")
        upstream = send("GET", url, _token_headers(request), settings.timeout)
    elif request.method == "POST":
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise RegistryError(
                400, "UNSUPPORTED", f"token POST must be a form, not {content_type or 'empty'!r}"
            )
        body = request.read_body(MAX_FORM_BYTES).decode("utf-8", "replace")
        form = _map_params(
            parse_qsl(body, keep_blank_values=True), settings.namespace, one_scope_per_param=False
        )
        headers = _token_headers(request)
        headers.set("Content-Type", "application/x-www-form-urlencoded")
        upstream = send(
            "POST", upstream_realm(settings), headers, settings.timeout, urlencode(form).encode()
        )
    else:
        raise unsupported(f"{request.method} is not served by the token endpoint", 405, "GET, POST")
    body = read_body(upstream, MAX_TOKEN_BYTES)
    headers = client_response_headers(Headers(upstream.headers.multi_items()))
    headers.remove("Content-Encoding")
    return Response.from_bytes(upstream.status_code, headers, body)


def _token_headers(request: Request) -> Headers:
    headers = upstream_request_headers(request.headers)
    headers.remove("Range")
    return headers


def _map_params(
    params: list[tuple[str, str]], namespace: Namespace, *, one_scope_per_param: bool
) -> list[tuple[str, str]]:
    """Token parameters with every scope put under the prefix; the rest kept in order."""
    if sum(1 for key, _ in params if key == "service") > 1:
        raise RegistryError(400, "UNSUPPORTED", "token request names more than one service")
    scopes: list[Scope] = []
    mapped: list[tuple[str, str]] = []
    for key, value in params:
        if key != "scope":
            mapped.append((key, value))
            continue
        scopes.extend(_parse_client_scopes(value))
        if len(scopes) > MAX_SCOPES:
            raise RegistryError(400, "UNSUPPORTED", f"more than {MAX_SCOPES} scopes requested")
    # Scopes that cannot be under the prefix are dropped, never passed on unmapped.
    upstream_scopes = list(
        dict.fromkeys(str(up) for scope in scopes if (up := scope_to_upstream(scope, namespace)))
    )
    if one_scope_per_param:
        mapped.extend(("scope", scope) for scope in upstream_scopes)
    elif upstream_scopes:
        mapped.append(("scope", " ".join(upstream_scopes)))
    return mapped


def _parse_client_scopes(value: str) -> list[Scope]:
    try:
        scopes = parse_scopes(value)
    except ScopeError as error:
        raise RegistryError(400, "UNSUPPORTED", f"invalid scope: {error}") from None
    for scope in scopes:
        if scope.type == "repository":
            try:
                RepositoryName.parse(scope.name)
            except RegistryError as error:
                raise RegistryError(
                    400, "NAME_INVALID", f"invalid scope {str(scope)!r}: {error.message}"
                ) from None
    return scopes
