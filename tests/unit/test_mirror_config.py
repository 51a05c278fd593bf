"""Mirrors and the failover wait as settings: read in order, each checked like the primary's,
and refused with one line that says why where crev could not ask a mirror."""

from __future__ import annotations

import pytest

from crev.config import DEFAULT_FAILOVER_SECONDS, Settings, read_settings
from crev.errors import ConfigError
from crev.names import Namespace
from crev.upstream.auth import AnonymousToken, RealmCredentials, StaticToken
from crev.urls import Origin

PUBLIC_GHCR = {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_REPO_PREFIX": "acme", "CREV_PUBLIC": "1"}


def test_the_single_route_takes_a_mirror() -> None:
    settings = Settings.from_env(
        {
            **PUBLIC_GHCR,
            "CREV_MIRROR_REGISTRY_HOST": "docker.io",
            "CREV_MIRROR_REPO_PREFIX": "/acmecorp/",
        }
    )
    route = settings.routes.default
    (mirror,) = route.mirrors
    assert mirror.origin == Origin("https", "registry-1.docker.io")
    assert mirror.namespace == Namespace("acmecorp", official_images=True)
    # Read with anonymous tokens of crev's own, never with a client's or the primary's.
    assert mirror.auth == AnonymousToken()
    (mirror_route,) = route.mirror_routes
    assert mirror_route.upstreams == (mirror,) and mirror_route.mirrors == ()
    assert mirror_route.vanity_prefix == route.vanity_prefix
    assert route.fallback is None
    assert route.describe() == (
        "NAME -> https://ghcr.io/acme/NAME  "
        "(public, failing over to https://registry-1.docker.io/acmecorp/NAME)"
    )


def test_a_mirror_has_a_scheme_and_credentials_of_its_own() -> None:
    settings = Settings.from_env(
        {
            "CREV_REGISTRY_HOST": "ghcr.io",
            "CREV_UPSTREAM_TOKEN": "primary-secret",
            "CREV_MIRROR_REGISTRY_HOST": "127.0.0.1:5000",
            "CREV_MIRROR_REGISTRY_SCHEME": "http",
            "CREV_MIRROR_UPSTREAM_USERNAME": "mirror",
            "CREV_MIRROR_UPSTREAM_PASSWORD": "pw",
        }
    )
    (mirror,) = settings.routes.default.mirrors
    assert mirror.origin == Origin("http", "127.0.0.1:5000")
    # The primary's credentials never go to the mirror.
    assert mirror.auth == RealmCredentials("mirror", "pw")
    assert read_settings({**PUBLIC_GHCR, "CREV_MIRROR_REGISTRY_HOST": "quay.io"})[1] == []


def test_a_route_has_both_mirrors_and_a_fallback() -> None:
    settings = Settings.from_env(
        {
            **PUBLIC_GHCR,
            "CREV_MIRROR_REGISTRY_HOST": "quay.io",
            "CREV_FALLBACK_REGISTRY_HOST": "x.io",
        }
    )
    route = settings.routes.default
    assert [mirror.host for mirror in route.mirrors] == ["quay.io"]
    assert route.fallback is not None and route.fallback.upstream.host == "x.io"
    # A mirror answers for the upstream; the fallback stays behind it for unknown names.
    (mirrored,) = route.mirror_routes
    assert mirrored.fallback == route.fallback
    assert route.describe().endswith(
        "(public, failing over to https://quay.io/NAME, falling back to https://x.io/NAME)"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_MIRROR_REGISTRY_HOST": "docker.io"},
            "CREV_MIRROR_REGISTRY_HOST: a mirror needs a public route or server-side "
            "credentials (a client's token is for the primary's realm, so crev could not ask "
            "a mirror)",
        ),
        (
            {**PUBLIC_GHCR, "CREV_MIRROR_REPO_PREFIX": "acme"},
            "CREV_MIRROR_REPO_PREFIX is set, but CREV_MIRROR_REGISTRY_HOST is not",
        ),
        (
            {**PUBLIC_GHCR, "CREV_MIRROR_UPSTREAM_TOKEN": "t"},
            "CREV_MIRROR_UPSTREAM_TOKEN is set, but CREV_MIRROR_REGISTRY_HOST is not",
        ),
        (
            {**PUBLIC_GHCR, "CREV_MIRROR_REGISTRY_HOST": "https://docker.io"},
            "CREV_MIRROR_REGISTRY_HOST='https://docker.io': must be a host with an optional "
            "port, like 'ghcr.io' or '127.0.0.1:5000' (no scheme, no path)",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_MIRROR_REGISTRY_HOST": "docker.io",
                "CREV_MIRROR_REGISTRY_SCHEME": "ftp",
            },
            "CREV_MIRROR_REGISTRY_SCHEME='ftp': must be 'https' or 'http'",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_MIRROR_REGISTRY_HOST": "docker.io",
                "CREV_MIRROR_REPO_PREFIX": "A",
            },
            "CREV_MIRROR_REPO_PREFIX='A': invalid repository name 'A': component 'A' "
            "does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_MIRROR_REGISTRY_HOST": "ghcr.io",
                "CREV_MIRROR_REPO_PREFIX": "acme",
            },
            "CREV_MIRROR_REGISTRY_HOST: https://ghcr.io/acme is named twice (as the route's "
            "own upstream or another mirror)",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_MIRROR_REGISTRY_HOST": "docker.io",
                "CREV_MIRROR_UPSTREAM_TOKEN": "t",
                "CREV_MIRROR_UPSTREAM_USERNAME": "u",
            },
            "CREV_MIRROR_UPSTREAM_TOKEN is set, and so is CREV_MIRROR_UPSTREAM_USERNAME/PASSWORD: "
            "use one",
        ),
        (
            {"CREV_ROUTES": "=ghcr.io/acme;public", "CREV_MIRROR_REGISTRY_HOST": "docker.io"},
            "CREV_ROUTES is set, and so is CREV_MIRROR_REGISTRY_HOST: use one or the other",
        ),
    ],
)
def test_single_route_mirror_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_a_route_takes_mirrors_in_order_each_with_its_credentials() -> None:
    settings = Settings.from_env(
        {
            "CREV_ROUTES": "tools/=ghcr.io/acme/tools;public;mirror=docker.io/acme;"
            "mirror=http://127.0.0.1:5000/tools;mirror-credentials=LOCAL;mirror=quay.io/acme,"
            " =ghcr.io/acme;credentials=GH;mirror=docker.io/acme;mirror-credentials=HUB;"
            "fallback=quay.io/old",
            "CREV_GH_TOKEN": "t",
            "CREV_HUB_USERNAME": "u",
            "CREV_HUB_PASSWORD": "p",
            "CREV_LOCAL_TOKEN": "local",
        }
    )
    tools = settings.routes.by_prefix("tools/")
    rest = settings.routes.by_prefix("")
    assert tools is not None and rest is not None
    assert [(m.origin, m.namespace, m.auth) for m in tools.mirrors] == [
        (
            Origin("https", "registry-1.docker.io"),
            Namespace("acme", official_images=True),
            AnonymousToken(),
        ),
        (Origin("http", "127.0.0.1:5000"), Namespace("tools"), StaticToken("local")),
        (Origin("https", "quay.io"), Namespace("acme"), AnonymousToken()),
    ]
    assert {mirror.vanity_prefix for mirror in tools.mirror_routes} == {"tools/"}
    (hub,) = rest.mirrors
    assert hub.auth == RealmCredentials("u", "p")
    assert rest.fallback is not None and rest.fallback.upstream.host == "quay.io"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "=ghcr.io/acme;mirror=docker.io/acme",
            "CREV_ROUTES entry '=ghcr.io/acme;mirror=docker.io/acme': mirror: a mirror needs a "
            "public route or server-side credentials (a client's token is for the primary's "
            "realm, so crev could not ask a mirror)",
        ),
        (
            "=ghcr.io/acme;public;mirror=ftp://docker.io",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=ftp://docker.io': mirror "
            "'ftp://docker.io': scheme must be http or https, not 'ftp'",
        ),
        (
            "=ghcr.io/acme;public;mirror=docker.io/Acme",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=docker.io/Acme': mirror "
            "'docker.io/Acme': 'Acme': invalid repository name 'Acme': component 'Acme' does "
            "not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
        ),
        (
            "=ghcr.io/acme;public;mirror-credentials=HUB",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror-credentials=HUB': "
            "mirror-credentials=HUB: name the mirror it is for just before it (mirror=HOST)",
        ),
        (
            "=ghcr.io/acme;public;mirror=quay.io;mirror-credentials=HUB;mirror-credentials=HUB",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=quay.io;mirror-credentials=HUB;"
            "mirror-credentials=HUB': mirror-credentials=HUB: name the mirror it is for just "
            "before it (mirror=HOST)",
        ),
        (
            "=ghcr.io/acme;public;mirror=quay.io;mirror-credentials=NONE",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=quay.io;mirror-credentials=NONE': "
            "CREV_NONE_USERNAME/CREV_NONE_PASSWORD or CREV_NONE_TOKEN must be set",
        ),
        (
            "=ghcr.io/acme;public;mirror=quay.io/a;mirror=quay.io/a/",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=quay.io/a;mirror=quay.io/a/': "
            "mirror: https://quay.io/a is named twice (as the route's own upstream or "
            "another mirror)",
        ),
        (
            "=ghcr.io/acme;public;mirror=",
            "CREV_ROUTES entry '=ghcr.io/acme;public;mirror=': unknown option 'mirror=' "
            "(known: realm=URL, credentials=NAME, official-images, public, follow-redirects, "
            "fallback=HOST[/NAMESPACE], fallback-credentials=NAME, mirror=HOST[/NAMESPACE], "
            "mirror-credentials=NAME)",
        ),
    ],
)
def test_route_mirror_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": value, "CREV_HUB_TOKEN": "t"})
    assert str(caught.value) == message


def test_the_failover_wait_is_read() -> None:
    assert Settings.from_env({}).failover_seconds == DEFAULT_FAILOVER_SECONDS == 5.0
    assert Settings.from_env({"CREV_FAILOVER_SECONDS": " "}).failover_seconds == 5.0
    assert Settings.from_env({"CREV_FAILOVER_SECONDS": "1.5"}).failover_seconds == 1.5


@pytest.mark.parametrize("value", ["0", "-1", "5s", "nan", "inf", "901"])
def test_the_failover_wait_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_FAILOVER_SECONDS": value})
    assert str(caught.value) == (
        f"CREV_FAILOVER_SECONDS={value!r}: must be a number of seconds above 0 and at most 900"
    )
