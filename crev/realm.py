"""The two ends of the token flow: the upstream's token service and crev's own token endpoint.

The upstream realm is never taken from a client: it is configured, or learned from the upstream's
own challenges and kept for the life of the process, so a token request costs no discovery round
trip once any upstream 401 has been seen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from .challenge import parse_challenges
from .config import Settings
from .errors import RegistryError, upstream_unavailable
from .hosts import is_http_url, is_valid_host
from .messages import Headers, Request
from .params import MalformedHeaderError
from .routing import Route, Upstream
from .upstream import release, send


@dataclass(frozen=True)
class TokenService:
    """Where an upstream issues tokens: its realm, and the `service` it expects to be named."""

    realm: str
    service: str | None = None


_learned: dict[Upstream, TokenService] = {}
_lock = threading.Lock()


def learn_token_service(upstream: Upstream, challenge: str) -> None:
    """Remember the realm an upstream announces in a `WWW-Authenticate` challenge."""
    try:
        challenges = parse_challenges(challenge)
    except MalformedHeaderError:
        return
    for parsed in challenges:
        realm = parsed.get("realm")
        if parsed.is_bearer and realm and is_http_url(realm):
            learned = TokenService(realm, parsed.get("service"))
            if _learned.get(upstream) != learned:
                with _lock:
                    _learned[upstream] = learned
            return


def token_service(route: Route, timeout: float) -> TokenService:
    """The route's upstream token service, asking the upstream's `/v2/` only the first time."""
    learned = _learned.get(route.upstream)
    if route.token_realm:
        return TokenService(route.token_realm, learned.service if learned else None)
    if learned:
        return learned
    response = send("GET", route.upstream.url("/v2/"), Headers(), timeout)
    release(response)
    challenge = response.headers.get("www-authenticate")
    if challenge:
        learn_token_service(route.upstream, challenge)
    learned = _learned.get(route.upstream)
    if not learned:
        raise upstream_unavailable(
            f"upstream {route.upstream.host} announced no Bearer token realm "
            f"(status {response.status_code})"
        )
    return learned


def forget_token_services() -> None:
    with _lock:
        _learned.clear()


# The token endpoint learns which route a scope-less token request is for from this parameter.
ROUTE_PARAMETER = "route"


def token_endpoint(request: Request, settings: Settings, route: Route) -> str:
    """crev's token endpoint for a route as an absolute URL, which docker requires of a realm."""
    if urlsplit(settings.token_url).scheme:
        url = settings.token_url
    else:
        url = urljoin(request.origin + "/", settings.token_url)
    if settings.routes.has_several:
        separator = "&" if "?" in url else "?"
        url += separator + urlencode({ROUTE_PARAMETER: route.vanity_prefix})
    return url


def request_origin(headers: Headers, default_scheme: str) -> str:
    """The vanity origin the client used: forwarded headers first, as a platform sets them."""
    scheme = (headers.get("x-forwarded-proto") or default_scheme).split(",")[0].strip().lower()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if scheme not in ("http", "https"):
        raise RegistryError(400, "UNSUPPORTED", f"unsupported forwarded scheme {scheme!r}")
    if not is_valid_host(host):
        raise RegistryError(400, "UNSUPPORTED", f"invalid or missing Host header {host!r}")
    return f"{scheme}://{host}"
