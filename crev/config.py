"""Configuration from `CREV_*` environment variables, with errors that name the variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ConfigError
from .names import Namespace

DOCKER_HUB = "registry-1.docker.io"
# `docker.io` is the name people know; its registry API lives on another host.
_HOST_ALIASES = {"docker.io": DOCKER_HUB, "index.docker.io": DOCKER_HUB}
# Vercel's Hobby limit is 300 s for a whole invocation; a stalled upstream must fail well before.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Upstream:
    """The registry crev fronts: scheme and `host[:port]`."""

    scheme: str
    host: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def url(self, path: str) -> str:
        return self.origin + path

    def is_same_host(self, scheme: str, netloc: str) -> bool:
        return netloc.lower() == self.host.lower() or (
            _default_port_host(scheme, netloc) == _default_port_host(self.scheme, self.host)
        )


def _default_port_host(scheme: str, netloc: str) -> str:
    netloc = netloc.lower()
    default = {"https": ":443", "http": ":80"}.get(scheme.lower())
    if default and netloc.endswith(default):
        return netloc[: -len(default)]
    return netloc


@dataclass(frozen=True)
class Settings:
    upstream: Upstream = field(default_factory=lambda: Upstream("https", DOCKER_HUB))
    namespace: Namespace = field(default_factory=Namespace)
    # Where crev's own token endpoint is served; a path is made absolute per request.
    token_url: str = "/api/token"
    # The upstream's token realm when known in advance; otherwise learned from its challenges.
    token_realm: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            upstream=Upstream(
                _scheme(env.get("CREV_REGISTRY_SCHEME", "https")),
                _host(env.get("CREV_REGISTRY_HOST", DOCKER_HUB)),
            ),
            namespace=Namespace.parse(env.get("CREV_REPO_PREFIX", "")),
            token_url=_token_url(env.get("CREV_TOKEN_URL", "/api/token")),
            token_realm=_optional_url("CREV_TOKEN_REALM", env.get("CREV_TOKEN_REALM", "")),
            timeout=_timeout(env.get("CREV_UPSTREAM_TIMEOUT", "")),
        )


_cache: dict[tuple[tuple[str, str], ...], Settings] = {}


def current_settings() -> Settings:
    """Settings for the current environment, parsed once per distinct set of values."""
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("CREV_")))
    settings = _cache.get(key)
    if settings is None:
        settings = _cache[key] = Settings.from_env()
    return settings


def _scheme(value: str) -> str:
    scheme = value.strip().lower() or "https"
    if scheme not in ("http", "https"):
        raise ConfigError(f"CREV_REGISTRY_SCHEME={value!r}: must be 'https' or 'http'")
    return scheme


def _host(value: str) -> str:
    host = value.strip().lower() or DOCKER_HUB
    host = _HOST_ALIASES.get(host, host)
    parts = urlsplit("//" + host)
    try:
        port = parts.port
    except ValueError:
        port = None
        host = ""
    if (
        not parts.hostname
        or parts.netloc != host
        or any(char in host for char in "/?#@ \\")
        or (":" in host.rsplit("]", 1)[-1] and port is None)
    ):
        raise ConfigError(
            f"CREV_REGISTRY_HOST={value!r}: must be a host with an optional port, "
            "like 'ghcr.io' or '127.0.0.1:5000' (no scheme, no path)"
        )
    return host


def _token_url(value: str) -> str:
    url = value.strip() or "/api/token"
    if url.startswith("/") and not url.startswith("//"):
        return url
    return _optional_url("CREV_TOKEN_URL", url) or url


def _optional_url(variable: str, value: str) -> str | None:
    url = value.strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{variable}={value!r}: must be an absolute http(s) URL")
    return url


def _timeout(value: str) -> float:
    if not value.strip():
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 900:
        raise ConfigError(f"CREV_UPSTREAM_TIMEOUT={value!r}: must be seconds between 0 and 900")
    return seconds
