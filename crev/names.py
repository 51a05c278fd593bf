"""Repository names, tags and digests, and the namespace that maps vanity names upstream.

The grammars are the OCI distribution spec's. Validation is on the raw path segment, before any
percent-decoding, so that `%2F`, `%2e%2e` and friends can never smuggle a separator past it.
"""

from __future__ import annotations

import re
from functools import total_ordering
from typing import NamedTuple, Protocol

from .errors import InvalidDigestError, InvalidNameError

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}")
_SHA512_HEX = re.compile(r"[a-f0-9]{128}")

# Clients cap `host/name` at 255 characters; a name longer than that is never pullable.
MAX_NAME_LENGTH = 255
# How much of an over-long name a refusal quotes.
SHOWN_NAME_CHARS = 64
# Where Docker Hub keeps official images: `alpine` is `library/alpine` there.
OFFICIAL_IMAGES_NAMESPACE = "library"


@total_ordering
class Word:
    """A value a grammar gives: a name, a tag, a digest. Each kind is its own type, so a tag
    never compares equal to a digest or a name with the same text; a word is immutable, and
    words of one kind order by their text. Written out rather than made by a decorator, which
    would cost every cold start the time to generate these methods."""

    __slots__ = ("value",)
    value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[Word], tuple[str]]:
        return type(self), (self.value,)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Word) and type(other) is type(self):
            return self.value == other.value
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Word) and type(other) is type(self):
            return self.value < other.value
        return NotImplemented

    def __hash__(self) -> int:
        return hash((type(self), self.value))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value!r})"

    def __str__(self) -> str:
        return self.value


class RepositoryName(Word):
    """A repository name that satisfies the OCI grammar, e.g. `tool` or `team/tool`."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> RepositoryName:
        if not text:
            raise InvalidNameError("repository name is empty")
        if len(text) > MAX_NAME_LENGTH:
            raise InvalidNameError(
                f"repository name {text[:SHOWN_NAME_CHARS]!r}... is {len(text)} characters; "
                f"at most {MAX_NAME_LENGTH} are allowed"
            )
        for component in text.split("/"):
            if not _COMPONENT.fullmatch(component):
                raise InvalidNameError(
                    f"invalid repository name {text!r}: component {component!r} does not match "
                    "[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
                    {"name": text},
                )
        return cls(text)

    @classmethod
    def find(cls, text: str) -> RepositoryName | None:
        """The name `text` is, or None: for names read from an upstream's answers, where one
        that breaks the grammar is just not one crev shows."""
        try:
            return cls.parse(text)
        except InvalidNameError:
            return None


class Tag(Word):
    """A tag, e.g. `1.2` or `latest`."""

    __slots__ = ()


class Digest(Word):
    """A content digest, `algorithm:encoded`; sha256 and sha512 have their length checked."""

    __slots__ = ()

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not is_digest(text):
            raise InvalidDigestError(f"invalid digest {text!r}", {"digest": text})
        return cls(text)


def is_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def is_digest(text: str) -> bool:
    if not _DIGEST.fullmatch(text):
        return False
    algorithm, _, encoded = text.partition(":")
    if algorithm == "sha256":
        return _SHA256_HEX.fullmatch(encoded) is not None
    if algorithm == "sha512":
        return _SHA512_HEX.fullmatch(encoded) is not None
    return True


class NameMapping(Protocol):
    """Anything that maps client names to upstream names and back (a namespace, a route)."""

    def to_upstream(self, name: RepositoryName) -> RepositoryName: ...

    def to_vanity(self, upstream_name: RepositoryName) -> RepositoryName | None: ...


def vanity_name_of(upstream_name: str, mapping: NameMapping) -> RepositoryName | None:
    """The client's name for a name read from an upstream's answer (a scope, a `Location`, an
    error's detail), or None where it breaks the grammar or lies outside the mapping."""
    name = RepositoryName.find(upstream_name)
    return None if name is None else mapping.to_vanity(name)


class Namespace(NamedTuple):
    """Where vanity names live upstream: `tool` is `<prefix>/tool` there.

    An empty prefix maps names one to one. On Docker Hub (`official_images`), a one-component
    name is an official image and lives under `library/`, as `docker pull alpine` assumes.
    """

    prefix: str = ""
    official_images: bool = False

    @classmethod
    def parse(cls, prefix: str, *, official_images: bool = False) -> Namespace:
        """A namespace as configured: `acme`, `/acme/` or `` (no prefix)."""
        prefix = prefix.strip().strip("/")
        if prefix:
            RepositoryName.parse(prefix)
        return cls(prefix, official_images)

    def to_upstream(self, name: RepositoryName) -> RepositoryName:
        if self.prefix:
            upstream_name = f"{self.prefix}/{name.value}"
        elif self.official_images and "/" not in name.value:
            upstream_name = f"{OFFICIAL_IMAGES_NAMESPACE}/{name.value}"
        else:
            return name
        if len(upstream_name) > MAX_NAME_LENGTH:
            raise InvalidNameError(
                f"repository name {name.value!r} is too long: upstream it is "
                f"{len(upstream_name)} characters, at most {MAX_NAME_LENGTH} are allowed"
            )
        return RepositoryName(upstream_name)

    def to_vanity(self, upstream_name: RepositoryName) -> RepositoryName | None:
        """The client's name for an upstream name, or None when it lies outside the prefix."""
        text = upstream_name.value
        if self.prefix:
            if not text.startswith(self.prefix + "/"):
                return None
            return RepositoryName(text[len(self.prefix) + 1 :])
        official = f"{OFFICIAL_IMAGES_NAMESPACE}/"
        if self.official_images and text.startswith(official) and text.count("/") == 1:
            return RepositoryName(text[len(official) :])
        return upstream_name
