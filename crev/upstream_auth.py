"""Server-side upstream credentials: crev fetches upstream tokens itself, so a private upstream
can be served to anonymous clients.

Tokens are asked for exactly the scopes of the request and kept until shortly before they expire.
The credentials go to the upstream's token realm only, and never appear in a response or a log.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import NamedTuple

from .errors import upstream_unavailable
from .messages import Headers
from .realm import TokenService, token_in, token_service
from .routing import Credentials, Route
from .upstream import read_body, send

# Refresh a token this long before the upstream says it expires, so it never lapses mid-request.
EXPIRY_MARGIN = 15
MAX_TOKEN_RESPONSE = 1024 * 1024


class _Key(NamedTuple):
    realm: str
    service: str | None
    scopes: tuple[str, ...]
    credentials: Credentials


class _Token(NamedTuple):
    value: str
    expires_at: float


_tokens: dict[_Key, _Token] = {}
_lock = threading.Lock()


def server_authorization(route: Route, scopes: list[str], timeout: float) -> str:
    """The `Authorization` value crev sends upstream for a route with server-side credentials."""
    credentials = route.credentials
    assert credentials is not None
    if credentials.token:
        return f"Bearer {credentials.token}"
    service = token_service(route, timeout)
    key = _Key(service.realm, service.service, tuple(scopes), credentials)
    cached = _tokens.get(key)
    if cached is None or cached.expires_at <= time.monotonic():
        cached = _fetch_token(key, timeout)
        with _lock:
            _tokens[key] = cached
    return f"Bearer {cached.value}"


def forget_token(route: Route, scopes: list[str]) -> None:
    """Drop cached tokens for these scopes, after the upstream refused one."""
    with _lock:
        for key in [key for key in _tokens if key.scopes == tuple(scopes)]:
            if key.credentials == route.credentials:
                del _tokens[key]


def forget_tokens() -> None:
    with _lock:
        _tokens.clear()


def _fetch_token(key: _Key, timeout: float) -> _Token:
    service = TokenService(key.realm, key.service)
    url = service.token_url(key.scopes, account=key.credentials.username)
    basic = base64.b64encode(
        f"{key.credentials.username}:{key.credentials.password}".encode()
    ).decode()
    headers = Headers([("Authorization", f"Basic {basic}"), ("Accept", "application/json")])
    started = time.monotonic()
    response = send("GET", url, headers, timeout)
    body = read_body(response, MAX_TOKEN_RESPONSE, timeout)
    if response.status != 200:
        raise upstream_unavailable(
            f"the upstream token realm refused crev's credentials (status {response.status})"
        )
    token, expires_in = token_in(body)
    if token is None or expires_in is None:
        raise upstream_unavailable("the upstream token realm answered without a token")
    lifetime = max(expires_in - EXPIRY_MARGIN, expires_in / 2)
    return _Token(token, started + lifetime)
