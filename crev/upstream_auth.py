"""Sending upstream, authorized: with the client's own login as it came, or with tokens crev
fetches itself: with server-side credentials, so a private upstream can be served to anonymous
clients, and anonymously for a public route, so its clients need no login at all.

Composed as go-containerregistry composes its transport: `send_authorized` authorizes, sends,
and on a 401 learns the realm and refreshes the token once. Tokens are asked for exactly the
scopes of the request, kept until shortly before they expire and shared by every client of the
process (`token_cache`). The credentials go to the upstream's token realm only, and never
appear in a response or a log.
"""

from __future__ import annotations

import base64
import time
from functools import partial
from typing import NamedTuple

from .errors import UpstreamError, UpstreamRealmError
from .failover import FAILING_STATUSES
from .messages import Headers
from .realm import Realm, announced_realm, learn_realm, realm_of
from .routing import Credentials, Route
from .scope import Scope
from .token_cache import CachedToken, TokenCache
from .token_response import MAX_TOKEN_RESPONSE_BYTES, token_in
from .upstream import UpstreamRequest, send
from .upstream_response import UpstreamResponse

# Refresh a token this long before the upstream says it expires, so it never lapses mid-request.
EXPIRY_MARGIN = 15


class TokenKey(NamedTuple):
    realm: Realm
    scopes: tuple[Scope, ...]
    # None for the anonymous tokens of a public route.
    credentials: Credentials | None


_tokens = TokenCache()


def send_authorized(
    request: UpstreamRequest, route: Route, scopes: tuple[Scope, ...], timeout: float
) -> UpstreamResponse:
    """Send with crev's own upstream authorization for `scopes`: authorize, send, and on a 401
    learn the realm it announces and refresh the token once. A body can be sent only once, a
    static token cannot be refreshed, and without a realm there is no token to get: those 401s
    are the answer."""
    key = authorize(request.headers, route, scopes, timeout)
    answer = send_with_client_login(request, route, timeout)
    if answer.status != 401 or request.body is not None or _has_static_token(route):
        return answer
    if key is None and announced_realm(route, timeout) is None:
        # No token went, and the 401 named no realm to get one from: asked again, the
        # upstream would refuse the same request the same way.
        return answer
    answer.release()
    if key is not None:
        _tokens.forget(key)
    authorize(request.headers, route, scopes, timeout)
    return send_with_client_login(request, route, timeout)


def send_with_client_login(
    request: UpstreamRequest, route: Route, timeout: float
) -> UpstreamResponse:
    """Send as the request's headers stand (the client's own `Authorization`, or none), and
    learn the realm an answer's challenge announces, so that a token request after it costs no
    discovery round trip."""
    answer = send(request, timeout)
    learn_realm(route.upstream, answer.headers)
    return answer


def _has_static_token(route: Route) -> bool:
    return route.credentials is not None and bool(route.credentials.token)


def authorize(
    headers: Headers, route: Route, scopes: tuple[Scope, ...], timeout: float
) -> TokenKey | None:
    """Put crev's own `Authorization` for these scopes in `headers`, or take any out where there
    is none to send (a public route's upstream that wants no token or grants none to anonymous
    users: the request then goes without, and the upstream refuses what is private). The key of
    the cached token used, if any."""
    credentials = route.credentials
    key: TokenKey | None = None
    authorization: str | None = None
    if credentials is not None and credentials.token:
        authorization = f"Bearer {credentials.token}"
    else:
        realm = realm_of(route, timeout) if credentials else announced_realm(route, timeout)
        if realm is not None:
            key = TokenKey(realm, scopes, credentials)
            token = _tokens.get(key, partial(_fetch_token, key, timeout))
            authorization = None if token is None else f"Bearer {token.value}"
    if authorization is None:
        headers.remove("Authorization")
    else:
        headers.set("Authorization", authorization)
    return key


def forget_tokens() -> None:
    _tokens.clear()


def _fetch_token(key: TokenKey, timeout: float) -> CachedToken | None:
    credentials = key.credentials
    headers = Headers([("Accept", "application/json")])
    if credentials is not None:
        basic = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
        headers.set("Authorization", f"Basic {basic.decode()}")
    url = key.realm.url_for(key.scopes, account=credentials.username if credentials else None)
    started = time.monotonic()
    answer = send(UpstreamRequest("GET", url, headers), timeout)
    body = answer.read(MAX_TOKEN_RESPONSE_BYTES, timeout)
    if answer.status in FAILING_STATUSES:
        # Not a refusal: the realm is down or limits crev, and so the upstream is (a route's
        # mirrors answer for it).
        raise UpstreamRealmError(
            f"the upstream token realm {url.origin.host} failed (status {answer.status})",
            answer.status,
        )
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
    return CachedToken(token, started + lifetime)
