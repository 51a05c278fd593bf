"""An upstream registry as one object, as go-containerregistry's transport is: where it is, where
a route's names live on it, how crev authenticates to it (chosen once from the settings), its
token realm and the tokens crev holds for it.

`send` authorizes, sends, and on a 401 learns the realm the answer announces and refreshes the
token once (never for a request with a body, nor for a method that cannot refresh). `relay`
sends a request with the client's own login as it came. Both learn the realm from any answer's
challenge, so a token request after it costs no discovery round trip. Tokens are asked for
exactly the scopes of a request, kept until shortly before they expire, and shared by every
client of the process. A client's ping (`/v2/`) that brings no login is answered as the
upstream last answered one (`ping`, crev/upstream/ping.py), and its token request with the
token the realm last gave the same request (`anonymous_token`, crev/upstream/anonymous_token.py).
Credentials go to the upstream's token realm only, never over plain http from an https
upstream, and never appear in a response or a log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from ..errors import UpstreamError, UpstreamRealmError
from ..messages import Headers
from ..names import Namespace, RepositoryName
from ..scope import Scope
from ..urls import URL, Origin
from .anonymous_token import AnonymousTokens
from .auth import AnonymousToken, ClientLogin, Grant, Login, TokenKey, TokenSource, UpstreamAuth
from .circuit import Circuit
from .connections import Connections, UpstreamRequest
from .ping import PingKnowledge
from .realm import Discovery, Realm, RealmKnowledge
from .response import HeldAnswer, UpstreamResponse
from .token_cache import CachedToken, TokenCache
from .token_response import MAX_TOKEN_RESPONSE_BYTES, kept_for, token_in

# Vercel's Hobby limit is 300 s for a whole invocation; a stalled upstream must fail well before.
DEFAULT_TIMEOUT = 30.0
# An upstream's (or its realm's) answers that say it cannot serve now, rather than what it holds.
FAILING_STATUSES = frozenset({429, 500, 502, 503, 504})


class Upstream(TokenSource):
    """One upstream registry, and what crev has learned of it. Two upstreams are equal when
    they are configured alike; what each learned is its own."""

    __slots__ = (
        "_anonymous_tokens",
        "_clock",
        "_connections",
        "_pinged",
        "_realm",
        "_tokens",
        "auth",
        "circuit",
        "namespace",
        "origin",
        "timeout",
    )

    def __init__(
        self,
        origin: Origin,
        namespace: Namespace,
        auth: UpstreamAuth | None = None,
        *,
        realm: URL | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        connections: Connections | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.origin = origin
        self.namespace = namespace
        self.auth: UpstreamAuth = ClientLogin() if auth is None else auth
        self.timeout = timeout
        self._connections = Connections() if connections is None else connections
        self._clock = clock
        self._realm = RealmKnowledge(realm)
        self._pinged = PingKnowledge(clock)
        self._tokens = TokenCache(clock=clock)
        self._anonymous_tokens = AnonymousTokens(clock)
        # Whether reads skip it for its mirrors, after it failed one (crev/failover.py).
        self.circuit = Circuit(clock=clock)

    # ------------------------------------------------------------------ what it is

    @property
    def host(self) -> str:
        return self.origin.host

    @property
    def connections(self) -> Connections:
        """The process's connections, for a request to another host (storage a redirect
        names), which carries none of this upstream's credentials."""
        return self._connections

    @property
    def configured_realm(self) -> URL | None:
        return self._realm.configured

    def url(self, target: str) -> URL:
        return self.origin.url(target)

    def _configuration(self) -> tuple[object, ...]:
        return (self.origin, self.namespace, self.auth, self._realm.configured)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Upstream) and other._configuration() == self._configuration()

    def __hash__(self) -> int:
        return hash(self._configuration())

    def __repr__(self) -> str:
        return f"Upstream({str(self.origin)!r}, {self.namespace!r}, {self.auth!r})"

    def is_registry_of(self, other: Upstream) -> bool:
        """Whether `other` is the same registry, realm and authentication, whatever its
        namespace: one token request can then serve both."""
        return (self.origin, self.auth, self._realm.configured) == (
            other.origin,
            other.auth,
            other._realm.configured,
        )

    @property
    def anonymous_or_own(self) -> UpstreamAuth:
        """How crev reads for a person who brings no login (the page): with its server-side
        credentials, else as an anonymous client."""
        return self.auth if self.auth.server_side else AnonymousToken()

    def crev_authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        """Whether crev authenticates this request itself (`send`), rather than passing on
        the client's own login (`relay`)."""
        return self.auth.authorizes(write=write, client_authorized=client_authorized)

    # ------------------------------------------------------------------ sending

    def send(
        self,
        request: UpstreamRequest,
        scopes: tuple[Scope, ...],
        *,
        auth: UpstreamAuth | None = None,
    ) -> UpstreamResponse:
        """Send with crev's own authorization for `scopes` (the upstream's method, or `auth`):
        authorize, send, and on a 401 learn the realm it announces and refresh the token once.
        A body can be sent only once, a method that cannot refresh has no other token, and
        without a realm there is no token to get: those 401s are the answer."""
        auth = self.auth if auth is None else auth
        grant = auth.authorization(self, scopes)
        answer = self.relay(request.with_authorization(grant.authorization))
        if answer.status != 401 or request.body is not None or not auth.refreshes:
            return answer
        if grant.token is None and self._realm.known() is None:
            # No token went, and the 401 named no realm to get one from: asked again, the
            # upstream would answer the same request the same way.
            return answer
        answer.release()
        if grant.token is not None:
            self._tokens.forget(grant.token)
        grant = auth.authorization(self, scopes)
        return self.relay(request.with_authorization(grant.authorization))

    def relay(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send as the request's headers stand (the client's own `Authorization`, or none), and
        learn the realm the answer's challenge announces; a realm other than the one known
        makes crev forget how the upstream answers a ping."""
        answer = self._connections.send(request, self.timeout)
        if self._realm.learn(answer.headers):
            self._pinged.forget()
        return answer

    def ping(self, request: UpstreamRequest, *, authorize: bool) -> UpstreamResponse | HeldAnswer:
        """A client's `/v2/` that brings no login: answered as the upstream last answered one,
        while crev trusts what it learned; else sent (with crev's own authorization where
        crev authorizes the route's reads) and its answer learned."""
        recalled = self.known_ping(request.method)
        if recalled is not None:
            return recalled
        if not authorize:
            return self._pinged.learned_from(self.relay(request), self.timeout)
        answer = self.send(request, ())
        if answer.status != 200:
            # crev's own credentials did not get in (or the upstream failed): nothing to keep.
            return answer
        return self._pinged.learned_from(answer, self.timeout)

    def known_ping(self, method: str) -> HeldAnswer | None:
        """The answer to a client's ping by `method` crev can give without asking, if any."""
        return self._pinged.recall(method)

    def ask_realm(self, request: UpstreamRequest, *, credentials: bool) -> UpstreamResponse:
        """Send a client's token request (with the client's `credentials`, if it carries any)
        to this upstream's realm, which the request's URL names."""
        if credentials:
            self._check_realm_for_credentials(Realm(request.url))
        return self._connections.send(request, self.timeout)

    def anonymous_token(self, request: UpstreamRequest) -> HeldAnswer:
        """A client's token request that carries nothing of the client's (a GET with no
        `Authorization`, credential or `account`): answered with the token the realm gave the
        same request before, while enough of its life is left; else sent to the realm (which
        the request's URL names), and its token kept."""
        recalled = self._anonymous_tokens.recall(request.url)
        if recalled is not None:
            return recalled
        asked_at = self._clock()
        answer = self._connections.send(request, self.timeout)
        return self._anonymous_tokens.learned_from(
            request.url, answer, asked_at, MAX_TOKEN_RESPONSE_BYTES, self.timeout
        )

    # ------------------------------------------------------------------ realm and tokens

    def realm(self) -> Realm:
        realm = self.announced_realm()
        if realm is None:
            raise UpstreamError(f"upstream {self.host} announced no Bearer token realm")
        return realm

    def announced_realm(self) -> Realm | None:
        return self._realm.discover(self._ping)

    def learn_realm(self, headers: Headers) -> None:
        """Remember the realm an answer of this upstream announces (and forget the ping it
        no longer answers so)."""
        if self._realm.learn(headers):
            self._pinged.forget()

    def _ping(self) -> Discovery:
        """The token spec's discovery: the upstream's `/v2/`, asked with nothing of a client's,
        which is what a client's ping gets where crev does not authorize it."""
        answer = self._connections.send(
            UpstreamRequest("GET", self.url("/v2/"), Headers()), self.timeout
        )
        discovery = Discovery(answer.status, answer.headers)
        if not self.auth.authorizes(write=False, client_authorized=False):
            self._pinged.learned_from(answer, self.timeout).release()
        else:
            answer.release()
        return discovery

    def bearer(self, realm: Realm, scopes: tuple[Scope, ...], login: Login | None) -> Grant:
        if login is not None:
            self._check_realm_for_credentials(realm)
        key = TokenKey(realm, scopes)
        token = self._tokens.get(key, partial(self._fetch_token, key, login))
        return Grant(None if token is None else f"Bearer {token.value}", key)

    def forget_tokens(self) -> None:
        self._tokens.clear()

    def _check_realm_for_credentials(self, realm: Realm) -> None:
        """Refuse to send credentials in clear text to a realm an https upstream names."""
        if self.origin.scheme == "https" and realm.url.origin.scheme != "https":
            raise UpstreamError(
                f"upstream {self.host} names the token realm {realm.url} over plain http: "
                "crev sends no credentials there"
            )

    def _fetch_token(self, key: TokenKey, login: Login | None) -> CachedToken | None:
        headers = Headers([("Accept", "application/json")])
        if login is not None:
            headers.set("Authorization", login.basic())
        url = key.realm.url_for(key.scopes, account=login.username if login else None)
        started = self._clock()
        answer = self._connections.send(UpstreamRequest("GET", url, headers), self.timeout)
        body = answer.read(MAX_TOKEN_RESPONSE_BYTES, self.timeout)
        if answer.status in FAILING_STATUSES:
            # Not a denial: the realm is down or limits crev, and so the upstream is (a
            # route's mirrors answer for it).
            raise UpstreamRealmError(
                f"the upstream token realm {url.origin.host} failed (status {answer.status})",
                answer.status,
            )
        if answer.status != 200:
            if login is None:
                return None
            raise UpstreamError(
                "the upstream token realm did not accept crev's credentials"
                f" (status {answer.status})"
            )
        token, expires_in = token_in(body)
        if token is None or expires_in is None:
            raise UpstreamError("the upstream token realm answered without a token")
        return CachedToken(token, started + kept_for(expires_in))

    # ------------------------------------------------------------------ names

    def to_upstream(self, name: RepositoryName) -> RepositoryName:
        return self.namespace.to_upstream(name)

    def to_vanity(self, upstream_name: RepositoryName) -> RepositoryName | None:
        return self.namespace.to_vanity(upstream_name)
