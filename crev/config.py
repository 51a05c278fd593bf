"""Configuration from `CREV_*` environment variables, with errors that name the variable."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple

from .errors import ConfigError, InvalidNameError
from .names import Namespace, RepositoryName
from .routing import Route, RouteTable
from .upstream import DEFAULT_TIMEOUT, Upstream
from .upstream.auth import AnonymousToken, ClientLogin, RealmCredentials, StaticToken, UpstreamAuth
from .upstream.connections import Connections
from .urls import DOCKER_HUB, URL, Origin, is_http_url, is_valid_host

# `docker.io` is the name people know; its registry API lives on another host.
_HOST_ALIASES = {"docker.io": DOCKER_HUB, "index.docker.io": DOCKER_HUB}
# Beyond any function's maximum duration on Vercel (800 s on Pro): a wait no request outlives.
MAX_TIMEOUT = 900.0
# How long a route with mirrors waits for its upstream's answer head before asking a mirror: a
# pull that fails over stays well inside the client's own patience.
DEFAULT_FAILOVER_SECONDS = 5.0
# Where crev's own token endpoint is served unless CREV_TOKEN_URL says otherwise.
DEFAULT_TOKEN_URL = "/api/token"
_CREDENTIALS_NAME = re.compile(r"[A-Z0-9_]+")


class Settings(NamedTuple):
    routes: RouteTable
    # Where crev's own token endpoint is served; a path is made absolute per request.
    token_url: str = DEFAULT_TOKEN_URL
    timeout: float = DEFAULT_TIMEOUT
    # Where a browser opening the domain is sent instead of crev's own page.
    browser_redirect: str | None = None
    # Pushing is opt-in: a vanity domain is read-only unless its owner says otherwise.
    allow_push: bool = False
    # The largest request body forwarded; Vercel takes no more than 4.5 MB anyway.
    max_body_bytes: int | None = None
    # How long the edge may keep a public route's answers by tag (manifests, tag lists); 0
    # keeps none, so a pushed tag is seen at once.
    tag_cache_seconds: int = 0
    # How long a route's upstream may take to send an answer head before a mirror is asked.
    failover_seconds: float = DEFAULT_FAILOVER_SECONDS

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        connections: Connections | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Settings:
        """Settings from `CREV_*` variables, their upstreams sending through `connections` (new
        ones of their own unless given) and keeping tokens on `clock`."""
        env = os.environ if environ is None else environ
        timeout = _seconds(
            "CREV_UPSTREAM_TIMEOUT", env.get("CREV_UPSTREAM_TIMEOUT", ""), DEFAULT_TIMEOUT
        )
        make = _UpstreamMaker(timeout, Connections() if connections is None else connections, clock)
        if env.get("CREV_ROUTES", "").strip():
            single = [name for name in _SINGLE_ROUTE_VARIABLES if env.get(name, "").strip()]
            if single:
                raise ConfigError(
                    f"CREV_ROUTES is set, and so is {', '.join(single)}: use one or the other"
                )
            routes = parse_routes(env["CREV_ROUTES"], env, make)
        else:
            routes = (_single_route(env, make),)
        tag_cache_seconds = _tag_cache_seconds(env.get("CREV_TAG_CACHE_SECONDS", ""), routes)
        return cls(
            routes=RouteTable(routes),
            token_url=_token_url(env.get("CREV_TOKEN_URL", "")),
            timeout=timeout,
            browser_redirect=_optional_url(
                "CREV_BROWSER_REDIRECT", env.get("CREV_BROWSER_REDIRECT", "")
            ),
            allow_push=bool(_flag("CREV_ALLOW_PUSH", env.get("CREV_ALLOW_PUSH", ""))),
            max_body_bytes=_max_body_bytes(env),
            tag_cache_seconds=tag_cache_seconds,
            failover_seconds=_seconds(
                "CREV_FAILOVER_SECONDS",
                env.get("CREV_FAILOVER_SECONDS", ""),
                DEFAULT_FAILOVER_SECONDS,
            ),
        )


_SINGLE_ROUTE_VARIABLES = (
    "CREV_REGISTRY_HOST",
    "CREV_REPO_PREFIX",
    "CREV_REGISTRY_SCHEME",
    "CREV_TOKEN_REALM",
    "CREV_OFFICIAL_IMAGES",
    "CREV_UPSTREAM_USERNAME",
    "CREV_UPSTREAM_PASSWORD",
    "CREV_UPSTREAM_TOKEN",
    "CREV_PUBLIC",
    "CREV_FOLLOW_REDIRECTS",
    "CREV_FALLBACK_REGISTRY_HOST",
    "CREV_FALLBACK_REPO_PREFIX",
    "CREV_FALLBACK_REGISTRY_SCHEME",
    "CREV_FALLBACK_UPSTREAM_USERNAME",
    "CREV_FALLBACK_UPSTREAM_PASSWORD",
    "CREV_FALLBACK_UPSTREAM_TOKEN",
    "CREV_MIRROR_REGISTRY_HOST",
    "CREV_MIRROR_REPO_PREFIX",
    "CREV_MIRROR_REGISTRY_SCHEME",
    "CREV_MIRROR_UPSTREAM_USERNAME",
    "CREV_MIRROR_UPSTREAM_PASSWORD",
    "CREV_MIRROR_UPSTREAM_TOKEN",
)


class _RecordingEnvironment(Mapping[str, str]):
    """The environment as `Settings.from_env` reads it, remembering each name it asks for."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        raise TypeError("settings must name the variables they read")

    def __len__(self) -> int:
        return len(self._env)


def read_settings(
    env: Mapping[str, str] | None = None,
    *,
    connections: Connections | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Settings, list[str]]:
    """Settings, and a warning for each `CREV_*` variable that was set but not read, for the
    caller to give."""
    env = os.environ if env is None else env
    settings, names = settings_and_variables(env, connections=connections, clock=clock)
    return settings, unknown_variables(env, names)


def settings_and_variables(
    env: Mapping[str, str],
    *,
    connections: Connections | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Settings, tuple[str, ...]]:
    """Settings, and the names of the variables they were read from."""
    recorded = _RecordingEnvironment(env)
    settings = Settings.from_env(recorded, connections=connections, clock=clock)
    return settings, tuple(sorted(recorded.names))


def unknown_variables(env: Mapping[str, str], read: Iterable[str]) -> list[str]:
    """A warning for each `CREV_*` variable in `env` that the settings did not read: a
    misspelled name (`CREV_REGISTRY`) would otherwise be ignored without a word. What is read
    decides, so route credentials count only when a route names them."""
    read = sorted(set(read))
    warnings = []
    for name in sorted(name for name in env if name.startswith("CREV_") and name not in read):
        import difflib  # only for a name to warn about: importing it is part of a cold start

        close = difflib.get_close_matches(name, read, n=1, cutoff=0.75)
        stem, _, kind = name[len("CREV_") :].rpartition("_")
        if close:
            hint = f" (did you mean {close[0]}?)"
        elif stem and kind in ("USERNAME", "PASSWORD", "TOKEN"):
            hint = f" (no CREV_ROUTES entry has ;credentials={stem})"
        else:
            hint = ""
        warnings.append(f"{name} is set, but crev has no such setting: it is ignored{hint}")
    return warnings


class _UpstreamMaker(NamedTuple):
    """What the upstreams of one `Settings` share: the timeout, the connections, the clock."""

    timeout: float
    connections: Connections
    clock: Callable[[], float]

    def __call__(
        self, origin: Origin, namespace: Namespace, auth: UpstreamAuth, realm: URL | None = None
    ) -> Upstream:
        return Upstream(
            origin,
            namespace,
            auth,
            realm=realm,
            timeout=self.timeout,
            connections=self.connections,
            clock=self.clock,
        )


def _auth(credentials: UpstreamAuth | None, *, public: bool) -> UpstreamAuth:
    """How crev authenticates to an upstream: with its server-side credentials, else
    anonymously for a public route's reads, else with each client's own login."""
    if credentials is not None:
        return credentials
    return AnonymousToken() if public else ClientLogin()


def _single_route(env: Mapping[str, str], make: _UpstreamMaker) -> Route:
    origin = Origin(
        _scheme("CREV_REGISTRY_SCHEME", env.get("CREV_REGISTRY_SCHEME", "https")),
        _host("CREV_REGISTRY_HOST", env.get("CREV_REGISTRY_HOST", DOCKER_HUB)),
    )
    official = _flag("CREV_OFFICIAL_IMAGES", env.get("CREV_OFFICIAL_IMAGES", ""))
    namespace = _namespace(
        env.get("CREV_REPO_PREFIX", ""),
        "CREV_REPO_PREFIX",
        official_images=origin.is_docker_hub if official is None else official,
    )
    public = bool(_flag("CREV_PUBLIC", env.get("CREV_PUBLIC", "")))
    upstream = make(
        origin,
        namespace,
        _auth(_credentials(env, "CREV_UPSTREAM"), public=public),
        _realm("CREV_TOKEN_REALM", env.get("CREV_TOKEN_REALM", "")),
    )
    follow_redirects = bool(_flag("CREV_FOLLOW_REDIRECTS", env.get("CREV_FOLLOW_REDIRECTS", "")))
    route = Route("", (upstream,), public, follow_redirects)
    mirror = _single_secondary(env, make, "CREV_MIRROR")
    route = _with_mirrors(route, () if mirror is None else (mirror,), "CREV_MIRROR_REGISTRY_HOST")
    return _with_fallback(
        route, _single_secondary(env, make, "CREV_FALLBACK"), "CREV_FALLBACK_REGISTRY_HOST"
    )


def _single_secondary(env: Mapping[str, str], make: _UpstreamMaker, stem: str) -> Upstream | None:
    """The single route's fallback (`stem` CREV_FALLBACK) or mirror (CREV_MIRROR), from
    `STEM_REGISTRY_HOST` and the variables beside it, each checked like the primary's."""
    host = env.get(f"{stem}_REGISTRY_HOST", "").strip()
    if not host:
        others = [
            name
            for name in _SINGLE_ROUTE_VARIABLES
            if name.startswith(f"{stem}_") and env.get(name, "").strip()
        ]
        if others:
            raise ConfigError(f"{others[0]} is set, but {stem}_REGISTRY_HOST is not")
        return None
    origin = Origin(
        _scheme(f"{stem}_REGISTRY_SCHEME", env.get(f"{stem}_REGISTRY_SCHEME", "")),
        _host(f"{stem}_REGISTRY_HOST", host),
    )
    namespace = _namespace(
        env.get(f"{stem}_REPO_PREFIX", ""),
        f"{stem}_REPO_PREFIX",
        official_images=origin.is_docker_hub,
    )
    return _fallback(make, origin, namespace, _credentials(env, f"{stem}_UPSTREAM"))


def _fallback(
    make: _UpstreamMaker, origin: Origin, namespace: Namespace, credentials: UpstreamAuth | None
) -> Upstream:
    """A fallback or a mirror. Read with crev's own tokens, like a public route's: a client's
    token is for the primary."""
    return make(origin, namespace, _auth(credentials, public=True))


def _with_fallback(route: Route, fallback: Upstream | None, shown: str) -> Route:
    """The route with its fallback, where crev can ask one: only where crev holds the upstream
    tokens itself, since a client's token is for one realm and would not open the other."""
    if fallback is None:
        return route
    if not route.crev_authorizes(write=False, client_authorized=False):
        raise ConfigError(
            f"{shown}: a fallback needs a public route or server-side credentials "
            "(a client's token is for the primary's realm, so crev could not ask the fallback)"
        )
    if (fallback.origin, fallback.namespace) == (route.upstream.origin, route.namespace):
        raise ConfigError(f"{shown}: the fallback is the route's own upstream and namespace")
    return route._replace(upstreams=(*route.upstreams, fallback))


def _with_mirrors(route: Route, mirrors: tuple[Upstream, ...], shown: str) -> Route:
    """The route with its mirrors, in the order they are asked, where crev can ask them: as a
    fallback, only where crev holds the upstream tokens itself."""
    if not mirrors:
        return route
    if not route.crev_authorizes(write=False, client_authorized=False):
        raise ConfigError(
            f"{shown}: a mirror needs a public route or server-side credentials "
            "(a client's token is for the primary's realm, so crev could not ask a mirror)"
        )
    seen = {(route.upstream.origin, route.namespace.prefix)}
    for mirror in mirrors:
        place = (mirror.origin, mirror.namespace.prefix)
        if place in seen:
            raise ConfigError(
                f"{shown}: {mirror.origin}/{mirror.namespace.prefix} is named twice "
                "(as the route's own upstream or another mirror)"
            )
        seen.add(place)
    return route._replace(mirrors=mirrors)


def parse_routes(value: str, env: Mapping[str, str], make: _UpstreamMaker) -> tuple[Route, ...]:
    """`CREV_ROUTES`: entries `vanity-prefix=[scheme://]host[:port][/namespace][;option=value]`,
    separated by commas or newlines, e.g. `tools/=ghcr.io/acme/tools, =ghcr.io/acme`.

    Options: `realm=URL` (the upstream's token realm), `credentials=NAME` (server-side
    credentials from `CREV_NAME_USERNAME`/`CREV_NAME_PASSWORD` or `CREV_NAME_TOKEN`),
    `official-images` (one-component names live under `library/`, as on Docker Hub, where it
    is the default), `public` (the route's images are public: clients pull without a login),
    `follow-redirects` (crev reads blobs from the storage the upstream redirects to itself),
    `fallback=[scheme://]host[:port][/namespace]` (where reads go that the upstream answers
    with an unknown name, tag or blob), `fallback-credentials=NAME` (server-side credentials
    for the fallback, as `credentials=NAME`), `mirror=[scheme://]host[:port][/namespace]` (a
    registry with the same images, asked when the upstream fails a read; repeatable, asked in
    order), `mirror-credentials=NAME` (server-side credentials for the mirror just before it).
    """
    routes: list[Route] = []
    seen: set[str] = set()
    for entry in (part.strip() for part in re.split(r"[,\n]", value)):
        if not entry:
            continue
        route = _route(entry, env, make)
        if route.vanity_prefix in seen:
            raise ConfigError(
                f"CREV_ROUTES entry {entry!r}: prefix {route.vanity_prefix!r} repeats"
            )
        seen.add(route.vanity_prefix)
        routes.append(route)
    if not routes:
        raise ConfigError("CREV_ROUTES is set but names no route")
    return tuple(routes)


def _route(entry: str, env: Mapping[str, str], make: _UpstreamMaker) -> Route:
    def fail(reason: str) -> ConfigError:
        return ConfigError(f"CREV_ROUTES entry {entry!r}: {reason}")

    vanity, equals, target = entry.partition("=")
    if not equals:
        raise fail("expected vanity-prefix=host[/namespace]")
    vanity = vanity.strip().strip("/")
    if vanity:
        with _as_setting(f"CREV_ROUTES entry {entry!r}: invalid vanity prefix"):
            RepositoryName.parse(vanity)
        vanity += "/"
    target, *options = (part.strip() for part in target.split(";"))
    try:
        origin, namespace = _upstream_target(target)
    except ConfigError as error:
        raise fail(error.message) from None
    realm = None
    credentials = None
    official = origin.is_docker_hub
    public = False
    follow_redirects = False
    fallback_target = None
    fallback_credentials = None
    # Each mirror's target and the name of its credentials, in the order given.
    mirror_targets: list[tuple[str, str | None]] = []
    for option in options:
        key, _, option_value = option.partition("=")
        if option == "official-images":
            official = True
        elif option == "public":
            public = True
        elif option == "follow-redirects":
            follow_redirects = True
        elif key == "realm":
            realm = _realm("CREV_ROUTES", option_value)
        elif key == "credentials" and _CREDENTIALS_NAME.fullmatch(option_value):
            credentials = _credentials(env, f"CREV_{option_value}", required=True)
        elif key == "fallback" and option_value.strip():
            fallback_target = option_value.strip()
        elif key == "fallback-credentials" and _CREDENTIALS_NAME.fullmatch(option_value):
            fallback_credentials = _credentials(env, f"CREV_{option_value}", required=True)
        elif key == "mirror" and option_value.strip():
            mirror_targets.append((option_value.strip(), None))
        elif key == "mirror-credentials" and _CREDENTIALS_NAME.fullmatch(option_value):
            if not mirror_targets or mirror_targets[-1][1] is not None:
                raise fail(f"{option}: name the mirror it is for just before it (mirror=HOST)")
            mirror_targets[-1] = (mirror_targets[-1][0], option_value)
        else:
            raise fail(
                f"unknown option {option!r} (known: realm=URL, credentials=NAME, "
                "official-images, public, follow-redirects, fallback=HOST[/NAMESPACE], "
                "fallback-credentials=NAME, mirror=HOST[/NAMESPACE], mirror-credentials=NAME)"
            )
    route = Route(
        vanity,
        (
            make(
                origin,
                namespace._replace(official_images=official),
                _auth(credentials, public=public),
                realm,
            ),
        ),
        public,
        follow_redirects,
    )
    try:
        mirrors = tuple(_mirror(make, target, env, name) for target, name in mirror_targets)
        route = _with_mirrors(route, mirrors, "mirror")
    except ConfigError as error:
        raise fail(error.message) from None
    if fallback_target is None:
        if fallback_credentials is not None:
            raise fail("fallback-credentials is set, but fallback is not")
        return route
    try:
        fallback_origin, fallback_namespace = _upstream_target(fallback_target)
    except ConfigError as error:
        raise fail(f"fallback: {error.message}") from None
    fallback = _fallback(
        make,
        fallback_origin,
        fallback_namespace._replace(official_images=fallback_origin.is_docker_hub),
        fallback_credentials,
    )
    try:
        return _with_fallback(route, fallback, "fallback")
    except ConfigError as error:
        raise fail(error.message) from None


def _mirror(
    make: _UpstreamMaker, target: str, env: Mapping[str, str], credentials_name: str | None
) -> Upstream:
    """A route entry's mirror: its target, with the credentials `mirror-credentials` names."""
    try:
        origin, namespace = _upstream_target(target)
    except ConfigError as error:
        raise ConfigError(f"mirror {target!r}: {error.message}") from None
    credentials = (
        None
        if credentials_name is None
        else _credentials(env, f"CREV_{credentials_name}", required=True)
    )
    return _fallback(
        make, origin, namespace._replace(official_images=origin.is_docker_hub), credentials
    )


def _upstream_target(target: str) -> tuple[Origin, Namespace]:
    """`[scheme://]host[:port][/namespace]`, as a route names an upstream."""
    scheme = "https"
    if "://" in target:
        scheme, _, target = target.partition("://")
        if scheme not in ("http", "https"):
            raise ConfigError(f"scheme must be http or https, not {scheme!r}")
    host, _, prefix = target.partition("/")
    if not host:
        raise ConfigError("expected vanity-prefix=host[/namespace]: the host is missing")
    return Origin(scheme, _host(None, host)), _namespace(prefix, None)


def _namespace(prefix: str, variable: str | None, *, official_images: bool = False) -> Namespace:
    """`variable` names the setting in errors; None where the caller names it (a route entry)."""
    with _as_setting(_shown(variable, prefix.strip().strip("/"))):
        return Namespace.parse(prefix, official_images=official_images)


@contextmanager
def _as_setting(shown: str) -> Iterator[None]:
    """A name that breaks the grammar, reported as a setting that cannot be used."""
    try:
        yield
    except InvalidNameError as error:
        raise ConfigError(f"{shown}: {error.message}") from None


def _credentials(
    env: Mapping[str, str], stem: str, *, required: bool = False
) -> UpstreamAuth | None:
    """Server-side credentials: a static token, or a username and password for the realm."""
    username = env.get(f"{stem}_USERNAME", "")
    password = env.get(f"{stem}_PASSWORD", "")
    token = env.get(f"{stem}_TOKEN", "")
    if token and (username or password):
        raise ConfigError(f"{stem}_TOKEN is set, and so is {stem}_USERNAME/PASSWORD: use one")
    if bool(username) != bool(password):
        missing = f"{stem}_PASSWORD" if username else f"{stem}_USERNAME"
        raise ConfigError(f"{missing} is not set, but its pair is")
    if not (token or username):
        if required:
            raise ConfigError(f"{stem}_USERNAME/{stem}_PASSWORD or {stem}_TOKEN must be set")
        return None
    return StaticToken(token) if token else RealmCredentials(username, password)


# Vercel's limit on a function's request body.
VERCEL_MAX_BODY_BYTES = 4_500_000


def _max_body_bytes(env: Mapping[str, str]) -> int | None:
    value = env.get("CREV_MAX_BODY_BYTES", "").strip()
    if not value:
        # The platform sets VERCEL=1 in every function it runs.
        return VERCEL_MAX_BODY_BYTES if env.get("VERCEL") == "1" else None
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"CREV_MAX_BODY_BYTES={value!r}: must be a positive number of bytes")
    return int(value)


# A year, as long as anything is kept at the edge.
MAX_TAG_CACHE_SECONDS = 31_536_000


def _tag_cache_seconds(value: str, routes: tuple[Route, ...]) -> int:
    text = value.strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_TAG_CACHE_SECONDS:
        raise ConfigError(
            f"CREV_TAG_CACHE_SECONDS={value!r}: must be seconds between 0 (off) and "
            f"{MAX_TAG_CACHE_SECONDS}"
        )
    seconds = int(text)
    # 0 keeps no tags, whatever the routes, as a setting turned off does.
    if seconds == 0:
        return 0
    if not any(route.public for route in routes):
        raise ConfigError(
            f"CREV_TAG_CACHE_SECONDS={value!r}: tags are kept at the edge on public routes only, "
            "and no route is public (CREV_PUBLIC=1, or ;public on a route)"
        )
    return seconds


def _flag(variable: str, value: str) -> bool | None:
    """A yes/no setting; None when unset, so a default can depend on other settings."""
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{variable}={value!r}: must be 1 or 0 (true/false, yes/no, on/off)")


def _scheme(variable: str, value: str) -> str:
    scheme = value.strip().lower() or "https"
    if scheme not in ("http", "https"):
        raise ConfigError(f"{variable}={value!r}: must be 'https' or 'http'")
    return scheme


def _shown(variable: str | None, value: str) -> str:
    """A setting's value as an error shows it: `VARIABLE='value'`, or `'value'` alone."""
    return f"{variable}={value!r}" if variable else repr(value)


def _host(variable: str | None, value: str) -> str:
    host = value.strip().lower() or DOCKER_HUB
    host = _HOST_ALIASES.get(host, host)
    if not is_valid_host(host):
        raise ConfigError(
            f"{_shown(variable, value)}: must be a host with an optional port, "
            "like 'ghcr.io' or '127.0.0.1:5000' (no scheme, no path)"
        )
    return host


def _token_url(value: str) -> str:
    url = value.strip() or DEFAULT_TOKEN_URL
    if url.startswith("/") and not url.startswith("//"):
        return url
    return _optional_url("CREV_TOKEN_URL", url) or url


def _optional_url(variable: str, value: str) -> str | None:
    url = value.strip()
    if not url:
        return None
    if not is_http_url(url):
        raise ConfigError(f"{variable}={value!r}: must be an absolute http(s) URL")
    return url


def _realm(variable: str, value: str) -> URL | None:
    url = _optional_url(variable, value)
    return None if url is None else URL.parse(url)


def _seconds(variable: str, value: str, default: float) -> float:
    if not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:
        raise ConfigError(
            f"{variable}={value!r}: must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
        )
    return seconds
