"""Hosts, origins and URLs: where crev sends a request, and the checks on what it is given.

A URL crev asks is built once as an `Origin` and a target and kept typed from there: the
request is sent to it and the answer's `Location` and `Link` are resolved against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

DOCKER_HUB = "registry-1.docker.io"
_NOT_IN_A_HOST = frozenset(" /?#@\\%")


def is_valid_host(host: str) -> bool:
    """A host name or IP literal with an optional numeric port, and nothing else."""
    # Visible ASCII only (printable ASCII but the space), none of it a URL's delimiter.
    if not host.isascii() or not host.isprintable() or not _NOT_IN_A_HOST.isdisjoint(host):
        return False
    if not host or host.endswith(":"):
        return False
    try:
        parts = urlsplit("//" + host)
        port = parts.port
    except ValueError:
        return False
    has_port_text = ":" in host.rsplit("]", 1)[-1]
    return parts.netloc == host and bool(parts.hostname) and (port is not None) == has_port_text


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a valid host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_valid_host(parts.netloc)


class Origin:
    """A scheme and `host[:port]`: a registry crev fronts, or the server of a token realm. A
    value of its own: equal to another origin alike, never to a tuple of the same strings, and
    never changed. (Written out rather than a frozen dataclass: building one at import is a
    cold start's cost.)"""

    __slots__ = ("host", "scheme")
    scheme: str
    host: str

    def __init__(self, scheme: str, host: str) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "host", host)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an Origin is a value: its {name} does not change")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Origin) and (other.scheme, other.host) == (self.scheme, self.host)

    def __hash__(self) -> int:
        return hash((self.scheme, self.host))

    def __repr__(self) -> str:
        return f"Origin(scheme={self.scheme!r}, host={self.host!r})"

    @property
    def is_docker_hub(self) -> bool:
        return self.host == DOCKER_HUB

    def url(self, target: str) -> URL:
        return URL(self, target)

    def is_same_origin(self, scheme: str, netloc: str) -> bool:
        return scheme.lower() == self.scheme and _without_default_port(
            scheme, netloc
        ) == _without_default_port(self.scheme, self.host)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}"


def _without_default_port(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if default and netloc.endswith(default):
        return netloc[: -len(default)]
    return netloc


class URL(NamedTuple):
    """An absolute URL: its origin, and its target (the path and query sent in the request
    line)."""

    origin: Origin
    target: str

    @classmethod
    def parse(cls, text: str) -> URL:
        """A URL from configuration or an upstream's challenge (a realm); the fragment, which
        no request carries, is dropped."""
        parts = urlsplit(text)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(Origin(parts.scheme.lower(), parts.netloc), target)

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def with_query(self, params: Sequence[tuple[str, str]]) -> URL:
        """This URL with `params` added to the query it may already have (realms can carry
        one)."""
        if not params:
            return self
        separator = "&" if "?" in self.target else "?"
        return URL(self.origin, self.target + separator + urlencode(params))

    def __str__(self) -> str:
        return f"{self.origin}{self.target}"
