"""`WWW-Authenticate` challenges (RFC 7235) and their rewriting for the vanity domain.

Clients fetch tokens from the challenge's realm for the challenge's scopes (containerd unions
them with its own), so a challenge must name crev's token endpoint and the client's names.
"""

from __future__ import annotations

from ..errors import InvalidScopeError, MalformedHeaderError
from ..names import NameMapping
from ..scope import Scope, parse_scopes, scope_to_vanity
from ..urls import URL
from .header_scanner import Scanner, check_field_value, quote


class Challenge:
    """One auth scheme and its parameters (or its token68), as `WWW-Authenticate` carries it."""

    __slots__ = ("params", "scheme", "token68")

    def __init__(
        self,
        scheme: str,
        params: list[tuple[str, str]] | None = None,
        token68: str | None = None,
    ) -> None:
        self.scheme = scheme
        self.params: list[tuple[str, str]] = [] if params is None else params
        self.token68 = token68

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Challenge) and (
            (self.scheme, self.params, self.token68) == (other.scheme, other.params, other.token68)
        )

    # mypy reads an unhashable class's `None` as a method overridden by a value; typeshed
    # marks its own unhashable classes the same way.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Challenge({self.scheme!r}, {self.params!r}, token68={self.token68!r})"

    @property
    def is_bearer(self) -> bool:
        return self.scheme.lower() == "bearer"

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key.lower() == name.lower():
                return value
        return None

    def with_param(self, name: str, value: str | None) -> Challenge:
        """A copy with `name` set to `value` in place (appended if absent, removed if None)."""
        params: list[tuple[str, str]] = []
        replaced = False
        for key, old in self.params:
            if key.lower() == name.lower():
                if value is not None and not replaced:
                    params.append((key, value))
                replaced = True
            else:
                params.append((key, old))
        if not replaced and value is not None:
            params.append((name, value))
        return Challenge(self.scheme, params, self.token68)

    def format(self) -> str:
        if self.token68 is not None:
            return f"{self.scheme} {check_field_value(self.token68)}"
        if not self.params:
            return self.scheme
        rendered = ",".join(
            f"{key}={quote(check_field_value(value))}" for key, value in self.params
        )
        return f"{self.scheme} {rendered}"


def parse_challenges(header: str) -> list[Challenge]:
    """All challenges in one `WWW-Authenticate` value (several may share a header)."""
    scanner = Scanner(header)
    challenges: list[Challenge] = []
    while scanner.at_next_element():
        challenge = Challenge(scanner.token())
        challenges.append(challenge)
        scanner.skip_whitespace()
        if scanner.at_end() or scanner.take(","):
            continue
        if not scanner.lookahead_is_param():
            challenge.token68 = scanner.token68()
            scanner.skip_whitespace()
            if not scanner.at_end() and not scanner.take(","):
                raise scanner.fail("',' after token68")
            continue
        while scanner.lookahead_is_param():
            key = scanner.token()
            scanner.take("=")
            challenge.params.append((key, scanner.value()))
            scanner.skip_whitespace()
            if scanner.at_end():
                break
            if not scanner.take(","):
                raise scanner.fail("',' between auth-params")
            while scanner.take(","):
                pass
    if not challenges:
        raise MalformedHeaderError(f"no challenge in {header!r}")
    return challenges


def format_challenges(challenges: list[Challenge]) -> str:
    return ", ".join(challenge.format() for challenge in challenges)


def vanity_scopes(value: str, mapping: NameMapping) -> str | None:
    """A challenge's `scope` as the client names it; scopes outside the prefix are dropped."""
    try:
        scopes: list[Scope] = parse_scopes(value)
    except InvalidScopeError:
        return None
    shown = [str(mapped) for scope in scopes if (mapped := scope_to_vanity(scope, mapping))]
    return " ".join(shown) or None


def rewrite_challenges(
    challenges: list[Challenge], token_endpoint: URL, mapping: NameMapping
) -> str:
    """The challenges with Bearer realms pointed at crev's token endpoint and scopes shown
    under vanity names."""
    rewritten: list[Challenge] = []
    for challenge in challenges:
        if challenge.is_bearer:
            challenge = challenge.with_param("realm", str(token_endpoint))
            scope = challenge.get("scope")
            if scope is not None:
                challenge = challenge.with_param("scope", vanity_scopes(scope, mapping))
        rewritten.append(challenge)
    return format_challenges(rewritten)
