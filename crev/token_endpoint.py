"""The token endpoint: a client's token request, with its scopes put under their route's
namespace, forwarded to that upstream's own realm.

Scopes are never widened: anything that is not a repository (another resource type, the
catalog) is removed rather than passed on, and the realm asked is the upstream's, never one a
client names.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from .config import Settings
from .errors import (
    InvalidNameError,
    InvalidScopeError,
    Refusal,
    RegistryError,
    method_not_allowed,
)
from .messages import Headers, Request, Response
from .names import RepositoryName
from .rewrite.header_filters import client_response_headers, upstream_request_headers
from .routing import Route
from .scope import Scope, parse_scopes, scope_to_upstream
from .upstream.connections import UpstreamRequest
from .upstream.response import HeldAnswer, UpstreamResponse
from .upstream.token_response import MAX_TOKEN_RESPONSE_BYTES
from .urls import URL

MAX_FORM_BYTES = 64 * 1024
# The token endpoint learns which route a scope-less token request is for from this parameter of
# the realm crev announces.
ROUTE_PARAMETER = "route"
# A pull asks for a handful of scopes; hundreds is abuse, not a client.
MAX_SCOPES = 64
PLACEHOLDER_TOKEN = "crev-served-with-server-credentials"
# The placeholder grants nothing, so its lifetime only spares clients asking again.
PLACEHOLDER_EXPIRES_IN = 3600
# Token parameters that are credentials, as an `Authorization` is.
_SECRET_PARAMETERS = frozenset({"password", "refresh_token"})
# What the token spec and OAuth2 define; anything else a client adds is not passed on.
_TOKEN_PARAMETERS = frozenset(
    {
        "service",
        "account",
        "client_id",
        "offline_token",
        "grant_type",
        "username",
        "password",
        "refresh_token",
        "access_type",
    }
)


def token_url(request: Request, settings: Settings, route: Route) -> URL:
    """crev's token endpoint for a route as an absolute URL, which docker requires of a realm."""
    if urlsplit(settings.token_url).scheme:
        url = URL.parse(settings.token_url)
    else:
        url = URL.parse(urljoin(f"{request.origin}/", settings.token_url))
    if settings.routes.has_several:
        url = url.with_query([(ROUTE_PARAMETER, route.vanity_prefix)])
    return url


def serve_token(request: Request, settings: Settings) -> Response:
    if request.method == "GET":
        params = parse_qsl(request.query, keep_blank_values=True)
        route, mapped = _map_params(params, settings, one_scope_per_param=True)
        if route.server_side:
            return _placeholder_token()
        realm = route.upstream.realm().url
        forwarded = UpstreamRequest("GET", realm.with_query(mapped), _token_headers(request))
        secrets = _carries_secrets(mapped)
        # An `account` may be answered for that account, even without its password.
        shared = not any(key == "account" for key, _ in mapped)
    elif request.method == "POST":
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise RegistryError(
                Refusal.BAD_REQUEST, f"token POST must be a form, not {content_type or 'empty'!r}"
            )
        form_text = request.read_body(MAX_FORM_BYTES).decode("utf-8", "replace")
        # The route hint travels in the realm's query string, the rest in the form.
        hint = [(k, v) for k, v in parse_qsl(request.query) if k == ROUTE_PARAMETER]
        route, form = _map_params(
            hint + parse_qsl(form_text, keep_blank_values=True), settings, one_scope_per_param=False
        )
        if route.server_side:
            return _placeholder_token()
        headers = _token_headers(request)
        headers.set("Content-Type", "application/x-www-form-urlencoded")
        realm = route.upstream.realm().url
        forwarded = UpstreamRequest("POST", realm, headers, urlencode(form).encode())
        secrets = _carries_secrets(form)
        shared = False
    else:
        raise method_not_allowed(
            f"{request.method} is not served by the token endpoint", "GET, POST"
        )
    credentials = secrets or "authorization" in forwarded.headers
    answer: UpstreamResponse | HeldAnswer
    if shared and not credentials:
        # What any client that brings no login gets: crev may have it already.
        answer = route.upstream.anonymous_token(forwarded)
    else:
        answer = route.upstream.ask_realm(forwarded, credentials=credentials)
    body = answer.read(MAX_TOKEN_RESPONSE_BYTES, settings.timeout)
    headers = client_response_headers(answer.headers)
    headers.remove("Content-Encoding")
    from_memory = isinstance(answer, HeldAnswer) and answer.from_memory
    return Response.from_bytes(answer.status, headers, body, None if from_memory else answer.status)


def _carries_secrets(params: list[tuple[str, str]]) -> bool:
    """Whether token parameters hold a credential (OAuth2's password or refresh token)."""
    return any(key in _SECRET_PARAMETERS and value for key, value in params)


def _placeholder_token() -> Response:
    """A token for names crev pulls with its own credentials: the client needs none, but
    clients that saw a challenge elsewhere on the domain ask anyway. It grants nothing: crev
    ignores client credentials on such routes, and no upstream token ever reaches a client."""
    body = json.dumps(
        {
            "token": PLACEHOLDER_TOKEN,
            "access_token": PLACEHOLDER_TOKEN,
            "expires_in": PLACEHOLDER_EXPIRES_IN,
        }
    ).encode()
    return Response.from_bytes(200, Headers([("Content-Type", "application/json")]), body)


def _token_headers(request: Request) -> Headers:
    headers = upstream_request_headers(request.headers)
    headers.remove("Range")
    return headers


def _map_params(
    params: list[tuple[str, str]], settings: Settings, *, one_scope_per_param: bool
) -> tuple[Route, list[tuple[str, str]]]:
    """The route asked for, and the token parameters with every scope put under it."""
    if sum(1 for key, _ in params if key == "service") > 1:
        raise RegistryError(Refusal.BAD_REQUEST, "token request names more than one service")
    scopes: list[Scope] = []
    hint: str | None = None
    mapped: list[tuple[str, str]] = []
    for key, value in params:
        if key == "scope":
            scopes.extend(_parse_client_scopes(value))
            if len(scopes) > MAX_SCOPES:
                raise RegistryError(Refusal.BAD_REQUEST, f"more than {MAX_SCOPES} scopes requested")
        elif key == ROUTE_PARAMETER:
            hint = value
        elif key in _TOKEN_PARAMETERS:
            mapped.append((key, value))
    route = _route_asked(scopes, hint, settings)
    # Scopes that cannot be under the route are dropped, never passed on unmapped.
    upstream_scopes = list(
        dict.fromkeys(str(up) for scope in scopes if (up := scope_to_upstream(scope, route)))
    )
    if one_scope_per_param:
        mapped.extend(("scope", scope) for scope in upstream_scopes)
    elif upstream_scopes:
        mapped.append(("scope", " ".join(upstream_scopes)))
    return route, mapped


def _route_asked(scopes: list[Scope], hint: str | None, settings: Settings) -> Route:
    """The one route a token request is for: by its repository scopes, else by the realm's hint."""
    routes = {
        settings.routes.for_name(RepositoryName(scope.name))
        for scope in scopes
        if scope.type == "repository"
    }
    first = next(iter(routes), None)
    if first is not None and any(not first.upstream.is_registry_of(r.upstream) for r in routes):
        names = ", ".join(sorted(repr(route.vanity_prefix) for route in routes))
        raise RegistryError(
            Refusal.SPANS_REGISTRIES,
            f"token request spans routes {names} on different registries: ask for one at a time",
        )
    if routes:
        return max(routes, key=lambda route: len(route.vanity_prefix))
    if hint is not None:
        route = settings.routes.by_prefix(hint)
        if route is None:
            raise RegistryError(Refusal.BAD_REQUEST, f"no route {hint!r}")
        return route
    return settings.routes.default


def _parse_client_scopes(value: str) -> list[Scope]:
    try:
        scopes = parse_scopes(value)
    except InvalidScopeError as error:
        raise RegistryError(Refusal.BAD_REQUEST, f"invalid scope: {error}") from None
    for scope in scopes:
        if scope.type == "repository":
            try:
                RepositoryName.parse(scope.name)
            except InvalidNameError as error:
                raise InvalidNameError(f"invalid scope {str(scope)!r}: {error.message}") from None
    return scopes
