"""The upstream's token realm and crev's own token endpoint, the two ends of the token flow.

The upstream realm is never taken from a client: it is configured, or learned from the upstream's
own challenges and kept for the life of the process, so a token request costs no discovery round
trip once any upstream 401 has been seen.
"""

from __future__ import annotations

import threading
from urllib.parse import urljoin, urlsplit

from .challenge import bearer_realm
from .config import Settings, Upstream
from .errors import RegistryError, upstream_unavailable
from .messages import Headers, Request
from .params import MalformedHeaderError
from .upstream import send

_learned: dict[Upstream, str] = {}
_lock = threading.Lock()


def learn_realm(upstream: Upstream, challenge: str) -> None:
    try:
        realm = bearer_realm(challenge)
    except MalformedHeaderError:
        return
    if realm and _is_http_url(realm) and _learned.get(upstream) != realm:
        with _lock:
            _learned[upstream] = realm


def upstream_realm(settings: Settings) -> str:
    """The upstream's token realm, asking the upstream's `/v2/` only the first time."""
    if settings.token_realm:
        return settings.token_realm
    realm = _learned.get(settings.upstream)
    if realm:
        return realm
    response = send("GET", settings.upstream.url("/v2/"), Headers(), settings.timeout)
    response.close()
    challenge = response.headers.get("www-authenticate")
    if challenge:
        learn_realm(settings.upstream, challenge)
    realm = _learned.get(settings.upstream)
    if not realm:
        raise upstream_unavailable(
            f"upstream {settings.upstream.host} announced no Bearer token realm "
            f"(status {response.status_code})"
        )
    return realm


def forget_realms() -> None:
    with _lock:
        _learned.clear()


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def token_endpoint(request: Request, settings: Settings) -> str:
    """crev's token endpoint as an absolute URL, which docker requires of a realm."""
    if urlsplit(settings.token_url).scheme:
        return settings.token_url
    return urljoin(request.origin + "/", settings.token_url)


def request_origin(headers: Headers, default_scheme: str) -> str:
    """The vanity origin the client used: forwarded headers first, as a platform sets them."""
    scheme = (headers.get("x-forwarded-proto") or default_scheme).split(",")[0].strip().lower()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    if scheme not in ("http", "https"):
        raise RegistryError(400, "UNSUPPORTED", f"unsupported forwarded scheme {scheme!r}")
    if not host or not _is_host(host):
        raise RegistryError(400, "UNSUPPORTED", f"invalid or missing Host header {host!r}")
    return f"{scheme}://{host}"


def _is_host(host: str) -> bool:
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.netloc == host and bool(parts.hostname) and not any(c in host for c in "/?#@\\ ")
