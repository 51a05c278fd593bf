"""An upstream's token realm: where it issues tokens, as configured or learned from its answers.

The realm is never taken from a client: it is configured, or learned from the upstream's own
challenges (on any answer crev sends on, or by a `ping` of its `/v2/`) and kept for the life of
the process, so a token request costs no discovery round trip once any upstream 401 has been
seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import NamedTuple

from .challenge import parse_challenges
from .errors import MalformedHeaderError, UpstreamError
from .messages import Headers
from .routing import Route
from .scope import Scope
from .upstream import UpstreamRequest, send
from .urls import URL, Origin, is_http_url


class Realm(NamedTuple):
    """An upstream's token issuer: where it is, and the `service` it expects to be named."""

    url: URL
    service: str | None = None

    def url_for(self, scopes: Iterable[Scope], account: str | None = None) -> URL:
        """The realm's URL for a token GET with these scopes, per the token spec."""
        params = [("service", self.service)] if self.service else []
        params += [("scope", str(scope)) for scope in scopes]
        if account is not None:
            params.append(("account", account))
        return self.url.with_query(params)


class LearnedRealms:
    """The realm each upstream announces in its challenges, kept for the life of the process:
    one per upstream origin, and the origins are the configured routes'. An upstream whose
    `/v2/` let crev in without a token is kept as open, so it is not pinged again before every
    request; a challenge it sends later teaches its realm all the same."""

    def __init__(self) -> None:
        self._realms: dict[Origin, Realm] = {}
        self._open: set[Origin] = set()
        self._lock = threading.Lock()

    def get(self, upstream: Origin) -> Realm | None:
        return self._realms.get(upstream)

    def is_open(self, upstream: Origin) -> bool:
        """Whether the upstream's `/v2/` answered 200 without asking for a token."""
        return upstream in self._open

    def learn_open(self, upstream: Origin) -> None:
        with self._lock:
            if upstream not in self._realms:
                self._open.add(upstream)

    def learn(self, upstream: Origin, headers: Headers) -> None:
        """Remember the Bearer realm an answer's `WWW-Authenticate` announces, if it has one
        crev can read; an answer without one changes nothing."""
        for value in headers.get_all("www-authenticate"):
            try:
                challenges = parse_challenges(value)
            except MalformedHeaderError:
                continue
            for challenge in challenges:
                url = challenge.get("realm")
                if challenge.is_bearer and url and is_http_url(url):
                    realm = Realm(URL.parse(url), challenge.get("service"))
                    if self._realms.get(upstream) != realm:
                        with self._lock:
                            self._realms[upstream] = realm
                            self._open.discard(upstream)
                    return

    def clear(self) -> None:
        with self._lock:
            self._realms.clear()
            self._open.clear()


_learned = LearnedRealms()


def learn_realm(upstream: Origin, headers: Headers) -> None:
    """Remember the realm an upstream's answer announces (see `LearnedRealms.learn`)."""
    _learned.learn(upstream, headers)


def ping(route: Route, timeout: float) -> None:
    """Ask the upstream's `/v2/` which realm it issues tokens from (the token spec's discovery),
    and learn it, or that it lets anyone in (a 200 without a challenge)."""
    answer = send(UpstreamRequest("GET", route.upstream.url("/v2/"), Headers()), timeout)
    answer.release()
    _learned.learn(route.upstream, answer.headers)
    if answer.status == 200 and _learned.get(route.upstream) is None:
        _learned.learn_open(route.upstream)


def realm_of(route: Route, timeout: float) -> Realm:
    """The route's upstream realm, pinging the upstream only the first time."""
    realm = announced_realm(route, timeout)
    if realm is None:
        raise UpstreamError(f"upstream {route.upstream.host} announced no Bearer token realm")
    return realm


def announced_realm(route: Route, timeout: float) -> Realm | None:
    """The route's upstream realm, or None for an upstream that asks for no token (pinged once:
    an open upstream stays open until it sends a challenge)."""
    learned = _learned.get(route.upstream)
    if route.token_realm:
        return Realm(route.token_realm, learned.service if learned else None)
    if learned is None and not _learned.is_open(route.upstream):
        ping(route, timeout)
        learned = _learned.get(route.upstream)
    return learned


def forget_realms() -> None:
    _learned.clear()
