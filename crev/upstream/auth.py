"""How crev authenticates to an upstream, one class per method, chosen once from the settings:
the client's own login passed on (`ClientLogin`), a static token (`StaticToken`), a bearer
token from the upstream's realm for server-side credentials (`RealmCredentials`) or for
nobody (`AnonymousToken`, a public route's).

A method says which requests crev authorizes itself (the others carry the client's login as it
came) and what `Authorization` goes with them; the upstream (crev/upstream/__init__.py) holds
the realm and the tokens it asks them of. docs/internals.md shows how a method is added.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, NamedTuple

if TYPE_CHECKING:
    from ..scope import Scope
    from .realm import Realm


class TokenKey(NamedTuple):
    """What an upstream's cached token was fetched for."""

    realm: Realm
    scopes: tuple[Scope, ...]


class Grant(NamedTuple):
    """The `Authorization` a request goes with (None: none at all), and the key of the cached
    token in it, which an upstream's 401 makes crev forget."""

    authorization: str | None
    token: TokenKey | None = None


class Login:
    """A username and password for a token realm: shown masked, and no tuple or dict to read
    the password from by accident."""

    __slots__ = ("password", "username")

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Login) and (other.username, other.password) == (
            self.username,
            self.password,
        )

    def __hash__(self) -> int:
        return hash((self.username, self.password))

    def basic(self) -> str:
        """The `Authorization` value of HTTP Basic for this login."""
        pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {pair}"

    def __repr__(self) -> str:
        # Never print a secret, even in a traceback or a debugger.
        return f"Login(username={self.username!r}, password=***)"


class TokenSource(ABC):
    """What an upstream offers its authentication method: its realm, and bearer tokens from it
    (cached, fetched once for all who ask at once)."""

    __slots__ = ()

    @abstractmethod
    def realm(self) -> Realm:
        """The upstream's token realm; UpstreamError where it announces none."""

    @abstractmethod
    def announced_realm(self) -> Realm | None:
        """The upstream's token realm, or None for an upstream that asks for no token."""

    @abstractmethod
    def bearer(self, realm: Realm, scopes: tuple[Scope, ...], login: Login | None) -> Grant:
        """A bearer token for `scopes` from `realm`, asked with `login` or anonymously; no
        `Authorization` where the realm grants an anonymous request none."""


class UpstreamAuth(ABC):
    """How crev authenticates to one upstream."""

    # crev holds credentials of its own for the upstream: its clients never log in, are never
    # challenged, and get a placeholder from the token endpoint.
    server_side: ClassVar[bool] = False
    # A 401 to what it sent is worth asking again with a fresh token.
    refreshes: ClassVar[bool] = True

    @abstractmethod
    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        """Whether crev authorizes this request itself, rather than passing on the client's
        login (its `Authorization`, or none)."""

    @abstractmethod
    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        """The `Authorization` for a request that needs `scopes`."""

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UpstreamAuth)
            and type(other) is type(self)
            and other._secrets() == self._secrets()
        )

    def __hash__(self) -> int:
        return hash((type(self), self._secrets()))

    def _secrets(self) -> tuple[str, ...]:
        """What tells two methods of a class apart; never shown."""
        return ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def describe(self) -> str:
        """The method in words for a person (the banner, the page)."""
        return ""


class ClientLogin(UpstreamAuth):
    """Every request goes with the client's own login, as it came: crev fetches no token."""

    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        return False

    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        return Grant(None)


class AnonymousToken(UpstreamAuth):
    """A public route's: reads that bring no login of their own go with an anonymous token
    crev fetches, so clients need none; writes and logged-in reads keep the client's login. An
    upstream that wants no token, or grants anonymous users none, is asked without."""

    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        return not write and not client_authorized

    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        realm = upstream.announced_realm()
        return Grant(None) if realm is None else upstream.bearer(realm, scopes, None)


class StaticToken(UpstreamAuth):
    """Server-side: one bearer token from the settings on every request (a GitHub PAT); a 401
    to it is the answer, since there is no other to get."""

    server_side = True
    refreshes = False

    def __init__(self, token: str) -> None:
        self._token = token

    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        return True

    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        return Grant(f"Bearer {self._token}")

    def _secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def __repr__(self) -> str:
        return "StaticToken(***)"

    def describe(self) -> str:
        return "server-side credentials"


class RealmCredentials(UpstreamAuth):
    """Server-side: a username and password crev trades at the upstream's realm for a bearer
    token of exactly each request's scopes; a realm that does not accept them is an upstream
    error."""

    server_side = True

    def __init__(self, username: str, password: str) -> None:
        self.login = Login(username, password)

    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        return True

    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        return upstream.bearer(upstream.realm(), scopes, self.login)

    def _secrets(self) -> tuple[str, ...]:
        return (self.login.username, self.login.password)

    def __repr__(self) -> str:
        return f"RealmCredentials(username={self.login.username!r}, password=***)"

    def describe(self) -> str:
        return "server-side credentials"
