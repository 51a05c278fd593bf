"""An upstream's token realm: where it issues tokens, as configured or learned from its answers.

The realm is never taken from a client: it is configured, or learned from the upstream's own
challenges (on any answer crev sends on, or by one ping of its `/v2/`) and kept as long as the
upstream is, so a token request costs no discovery round trip once any upstream 401 has been
seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ..errors import MalformedHeaderError
from ..messages import Headers
from ..rewrite.challenge import parse_challenges
from ..scope import Scope
from ..urls import URL, is_http_url


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


def announced_in(headers: Headers) -> Realm | None:
    """The Bearer realm an answer's `WWW-Authenticate` announces, if it has one crev can read."""
    for value in headers.get_all("www-authenticate"):
        try:
            challenges = parse_challenges(value)
        except MalformedHeaderError:
            continue
        for challenge in challenges:
            url = challenge.get("realm")
            if challenge.is_bearer and url and is_http_url(url):
                return Realm(URL.parse(url), challenge.get("service"))
    return None


class Discovery(NamedTuple):
    """What one ping of an upstream's `/v2/` answered."""

    status: int
    headers: Headers


class _Ping:
    """A ping under way, which everyone else who needs the realm meanwhile waits for."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class RealmKnowledge:
    """What crev knows of one upstream's realm: configured, or the last one its challenges
    announced. An upstream whose `/v2/` let crev in without a token is kept as open, so it is
    not pinged again before every request; a challenge it sends later teaches its realm all the
    same. However many requests find the realm unknown at once, one ping asks for it."""

    def __init__(self, configured: URL | None = None) -> None:
        self.configured = configured
        self._learned: Realm | None = None
        self._open = False
        self._ping: _Ping | None = None
        self._lock = threading.Lock()

    def learn(self, headers: Headers) -> bool:
        """Remember the realm an answer's challenge announces; an answer without one changes
        nothing. Whether the realm changed (or was first learned)."""
        realm = announced_in(headers)
        if realm is None or realm == self._learned:
            return False
        with self._lock:
            self._learned = realm
            self._open = False
        return True

    def known(self) -> Realm | None:
        """The realm as known without asking: the configured one (with the `service` the
        upstream names, once learned), else the learned one."""
        learned = self._learned
        if self.configured is not None:
            return Realm(self.configured, learned.service if learned else None)
        return learned

    @property
    def is_open(self) -> bool:
        """Whether the upstream's `/v2/` answered 200 without asking for a token."""
        return self._open

    def discover(self, ping: Callable[[], Discovery]) -> Realm | None:
        """The realm, pinging for it (once for all who ask at the same time) while it is
        neither known nor the upstream open. A failed ping (a 500, a 404) is not taken for an
        open upstream: the next request asks again."""
        realm = self.known()
        if realm is not None or self._open:
            return realm
        with self._lock:
            pending = self._ping
            leading = pending is None
            if pending is None:
                pending = self._ping = _Ping()
        if not leading:
            # The leader's ping is bounded by its upstream timeout.
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return self.known()
        try:
            answer = ping()
            self.learn(answer.headers)
            if answer.status == 200 and self._learned is None:
                self._open = True
        except BaseException as error:
            pending.error = error
            raise
        finally:
            with self._lock:
                self._ping = None
            pending.done.set()
        return self.known()
