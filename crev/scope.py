"""Token scopes (`type[(class)]:name:action[,action]*`) and their mapping across the prefix.

A name may hold `host:port`, so the type is read up to the first colon and the actions from the
last one; whatever lies between is the name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidNameError, InvalidScopeError
from .names import NameMapping, RepositoryName, vanity_name_of

_TYPE = re.compile(r"[a-z0-9]+")
_CLASS = re.compile(r"[a-zA-Z0-9]+")
_ACTION = re.compile(r"[a-z]+|\*")


class Scope(NamedTuple):
    """One scope a token is asked for, e.g. `repository:acme/tool:pull,push`."""

    type: str
    name: str
    actions: tuple[str, ...]
    resource_class: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not name:
            raise InvalidScopeError(f"scope {text!r} is not type:name:actions")
        resource_class = None
        if kind.endswith(")") and "(" in kind:
            kind, _, resource_class = kind[:-1].partition("(")
            if not _CLASS.fullmatch(resource_class):
                raise InvalidScopeError(f"scope {text!r} has an invalid resource class")
        if not _TYPE.fullmatch(kind):
            raise InvalidScopeError(f"scope {text!r} has an invalid resource type {kind!r}")
        action_list = tuple(actions.split(","))
        if not all(_ACTION.fullmatch(action) for action in action_list):
            raise InvalidScopeError(f"scope {text!r} has invalid actions {actions!r}")
        if any(char.isspace() or ord(char) < 0x20 for char in name):
            raise InvalidScopeError(f"scope {text!r} has an invalid name")
        return cls(kind, name, action_list, resource_class)

    @classmethod
    def repository(cls, name: RepositoryName, *actions: str) -> Scope:
        return cls("repository", name.value, actions)

    def with_name(self, name: str) -> Scope:
        return Scope(self.type, name, self.actions, self.resource_class)

    def __str__(self) -> str:
        kind = f"{self.type}({self.resource_class})" if self.resource_class else self.type
        return f"{kind}:{self.name}:{','.join(self.actions)}"


def parse_scopes(value: str) -> list[Scope]:
    """Every scope in a space-separated list (a `scope` parameter may carry several)."""
    return [Scope.parse(part) for part in value.split()]


def scope_to_vanity(scope: Scope, mapping: NameMapping) -> Scope | None:
    """The scope as the client names it, or None when it lies outside the prefix."""
    if scope.type != "repository":
        return None
    vanity = vanity_name_of(scope.name, mapping)
    return scope.with_name(vanity.value) if vanity else None


def scope_to_upstream(scope: Scope, mapping: NameMapping) -> Scope | None:
    """The scope under the prefix, or None for anything crev does not serve."""
    if scope.type != "repository":
        return None
    try:
        return scope.with_name(mapping.to_upstream(RepositoryName.parse(scope.name)).value)
    except InvalidNameError:
        return None
