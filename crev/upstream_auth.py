"""Upstream tokens crev fetches itself: with server-side credentials, so a private upstream can
be served to anonymous clients, and anonymously for a public route, so its clients need no
login at all.

Tokens are asked for exactly the scopes of the request, kept until shortly before they expire
and shared by every client of the process. The credentials go to the upstream's token realm
only, and never appear in a response or a log.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import NamedTuple

from .errors import UpstreamError
from .messages import Headers
from .realm import TokenService, announced_token_service, token_in, token_service
from .routing import Credentials, Route
from .scope import Scope
from .upstream import UpstreamRequest, send
from .urls import URL

# Refresh a token this long before the upstream says it expires, so it never lapses mid-request.
EXPIRY_MARGIN = 15
MAX_TOKEN_RESPONSE = 1024 * 1024


class _Key(NamedTuple):
    realm: URL
    service: str | None
    scopes: tuple[Scope, ...]
    # None for the anonymous tokens of a public route.
    credentials: Credentials | None


class _Token(NamedTuple):
    value: str
    expires_at: float


_tokens: dict[_Key, _Token] = {}
_lock = threading.Lock()


def server_authorization(route: Route, scopes: tuple[Scope, ...], timeout: float) -> str | None:
    """The `Authorization` value crev sends upstream for a request it authenticates itself;
    None where a public route's upstream wants no token or grants none to anonymous users (the
    request then goes without, and the upstream refuses what is private)."""
    credentials = route.credentials
    if credentials is not None and credentials.token:
        return f"Bearer {credentials.token}"
    if credentials is None:
        service = announced_token_service(route, timeout)
        if service is None:
            return None
    else:
        service = token_service(route, timeout)
    key = _Key(service.realm, service.service, scopes, credentials)
    cached = _tokens.get(key)
    if cached is None or cached.expires_at <= time.monotonic():
        fetched = _fetch_token(key, timeout)
        if fetched is None:
            return None
        cached = fetched
        with _lock:
            _tokens[key] = cached
    return f"Bearer {cached.value}"


def authorize(headers: Headers, route: Route, scopes: tuple[Scope, ...], timeout: float) -> None:
    """Put crev's own `Authorization` for these scopes in `headers`, or take any out where
    there is none to send."""
    authorization = server_authorization(route, scopes, timeout)
    if authorization is None:
        headers.remove("Authorization")
    else:
        headers.set("Authorization", authorization)


def forget_token(route: Route, scopes: tuple[Scope, ...]) -> None:
    """Drop cached tokens for these scopes, after the upstream refused one."""
    with _lock:
        for key in [key for key in _tokens if key.scopes == scopes]:
            if key.credentials == route.credentials:
                del _tokens[key]


def forget_tokens() -> None:
    with _lock:
        _tokens.clear()


def _fetch_token(key: _Key, timeout: float) -> _Token | None:
    credentials = key.credentials
    service = TokenService(key.realm, key.service)
    headers = Headers([("Accept", "application/json")])
    if credentials is not None:
        basic = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
        headers.set("Authorization", f"Basic {basic.decode()}")
    url = service.token_url(key.scopes, account=credentials.username if credentials else None)
    started = time.monotonic()
    answer = send(UpstreamRequest("GET", url, headers), timeout)
    body = answer.read(MAX_TOKEN_RESPONSE, timeout)
    if answer.status != 200:
        if credentials is None:
            return None
        raise UpstreamError(
            f"the upstream token realm refused crev's credentials (status {answer.status})"
        )
    token, expires_in = token_in(body)
    if token is None or expires_in is None:
        raise UpstreamError("the upstream token realm answered without a token")
    lifetime = max(expires_in - EXPIRY_MARGIN, expires_in / 2)
    return _Token(token, started + lifetime)
