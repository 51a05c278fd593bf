"""The two ends of the token flow: the upstream's token service and crev's own token endpoint.

The upstream realm is never taken from a client: it is configured, or learned from the upstream's
own challenges and kept for the life of the process, so a token request costs no discovery round
trip once any upstream 401 has been seen.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from .challenge import Challenge, parse_challenges
from .config import Settings
from .errors import MalformedHeaderError, UpstreamError, unsupported
from .messages import Headers, Request
from .routing import Route
from .scope import Scope
from .upstream import UpstreamRequest, send
from .urls import URL, Origin, is_http_url, is_valid_host


class TokenService(NamedTuple):
    """Where an upstream issues tokens: its realm, and the `service` it expects to be named."""

    realm: URL
    service: str | None = None

    def token_url(self, scopes: Iterable[Scope], account: str | None = None) -> URL:
        """The realm's URL for a token GET with these scopes, per the token spec."""
        params = [("service", self.service)] if self.service else []
        params += [("scope", str(scope)) for scope in scopes]
        if account is not None:
            params.append(("account", account))
        return self.realm.with_query(params)


def token_in(body: bytes) -> tuple[str | None, int | None]:
    """The token (`token`, or OAuth2's `access_token`) and its lifetime in seconds from a token
    response; None for what is missing or malformed."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    token = document.get("token") or document.get("access_token")
    try:
        expires_in: int | None = int(document.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (ValueError, TypeError):
        expires_in = None
    return (token if isinstance(token, str) and token else None), expires_in


_learned: dict[Origin, TokenService] = {}
_lock = threading.Lock()


def learn_token_service(origin: Origin, challenges: list[Challenge]) -> None:
    """Remember the realm an upstream announces in its `WWW-Authenticate` challenges."""
    for challenge in challenges:
        realm = challenge.get("realm")
        if challenge.is_bearer and realm and is_http_url(realm):
            learned = TokenService(URL.parse(realm), challenge.get("service"))
            if _learned.get(origin) != learned:
                with _lock:
                    _learned[origin] = learned
            return


def learn_token_service_of(origin: Origin, headers: Headers) -> None:
    """Remember the realm an answer's challenge announces, if it has one crev can read."""
    challenge = headers.get("www-authenticate")
    if challenge:
        with contextlib.suppress(MalformedHeaderError):
            learn_token_service(origin, parse_challenges(challenge))


def token_service(route: Route, timeout: float) -> TokenService:
    """The route's upstream token service, asking the upstream's `/v2/` only the first time."""
    service = announced_token_service(route, timeout)
    if service is None:
        raise UpstreamError(f"upstream {route.upstream.host} announced no Bearer token realm")
    return service


def announced_token_service(route: Route, timeout: float) -> TokenService | None:
    """The route's upstream token service, or None for an upstream that asks for no token."""
    learned = _learned.get(route.upstream)
    if route.token_realm:
        return TokenService(route.token_realm, learned.service if learned else None)
    if learned:
        return learned
    answer = send(UpstreamRequest("GET", route.upstream.url("/v2/"), Headers()), timeout)
    answer.release()
    learn_token_service_of(route.upstream, answer.headers)
    return _learned.get(route.upstream)


def forget_token_services() -> None:
    with _lock:
        _learned.clear()


# The token spec's default lifetime when a response names none.
DEFAULT_EXPIRES_IN = 60

# The token endpoint learns which route a scope-less token request is for from this parameter.
ROUTE_PARAMETER = "route"


def token_endpoint(request: Request, settings: Settings, route: Route) -> URL:
    """crev's token endpoint for a route as an absolute URL, which docker requires of a realm."""
    if urlsplit(settings.token_url).scheme:
        url = URL.parse(settings.token_url)
    else:
        url = URL.parse(urljoin(f"{request.origin}/", settings.token_url))
    if settings.routes.has_several:
        url = url.with_query([(ROUTE_PARAMETER, route.vanity_prefix)])
    return url


def request_origin(headers: Headers, default_scheme: str) -> Origin:
    """The vanity origin the client used: forwarded headers first, as a platform sets them."""
    scheme = (headers.get("x-forwarded-proto") or default_scheme).split(",")[0].strip().lower()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if scheme not in ("http", "https"):
        raise unsupported(f"unsupported forwarded scheme {scheme!r}", 400)
    if not is_valid_host(host):
        raise unsupported(f"invalid or missing Host header {host!r}", 400)
    return Origin(scheme, host)
