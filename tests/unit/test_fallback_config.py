"""The fallback upstream and the tag TTL as settings: read, validated like the primary's, and
refused with one line that says why where crev could not ask a fallback."""

from __future__ import annotations

import pytest

from crev.config import Settings
from crev.errors import ConfigError
from crev.names import Namespace
from crev.upstream.auth import AnonymousToken, RealmCredentials
from crev.urls import Origin

PUBLIC_GHCR = {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_REPO_PREFIX": "acme", "CREV_PUBLIC": "1"}


def test_the_single_route_takes_a_fallback() -> None:
    settings = Settings.from_env(
        {
            **PUBLIC_GHCR,
            "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
            "CREV_FALLBACK_REPO_PREFIX": "/acmecorp/",
        }
    )
    route = settings.routes.default
    assert route.fallback is not None
    assert route.fallback.upstream.origin == Origin("https", "registry-1.docker.io")
    assert route.fallback.namespace == Namespace("acmecorp", official_images=True)
    # Read with anonymous tokens of crev's own, never with a client's.
    assert route.fallback.public and route.fallback.upstream.auth == AnonymousToken()
    assert route.fallback.fallback is None
    assert route.describe() == (
        "NAME -> https://ghcr.io/acme/NAME  "
        "(public, falling back to https://registry-1.docker.io/acmecorp/NAME)"
    )


def test_a_docker_hub_fallback_is_described_with_its_official_images() -> None:
    # As the page's 'Served from' shows it: one-component names under library/.
    settings = Settings.from_env({**PUBLIC_GHCR, "CREV_FALLBACK_REGISTRY_HOST": "docker.io"})
    assert settings.routes.default.describe() == (
        "NAME -> https://ghcr.io/acme/NAME  (public, falling back to "
        "https://registry-1.docker.io/library/NAME for one-component names (official images), "
        "https://registry-1.docker.io/NAME for the rest)"
    )


def test_a_fallback_has_a_scheme_and_credentials_of_its_own() -> None:
    settings = Settings.from_env(
        {
            "CREV_REGISTRY_HOST": "ghcr.io",
            "CREV_UPSTREAM_TOKEN": "primary-secret",
            "CREV_FALLBACK_REGISTRY_HOST": "127.0.0.1:5000",
            "CREV_FALLBACK_REGISTRY_SCHEME": "http",
            "CREV_FALLBACK_UPSTREAM_USERNAME": "old",
            "CREV_FALLBACK_UPSTREAM_PASSWORD": "pw",
        }
    )
    fallback = settings.routes.default.fallback
    assert fallback is not None
    assert fallback.upstream.origin == Origin("http", "127.0.0.1:5000")
    # The primary's credentials never go to the fallback.
    assert fallback.upstream.auth == RealmCredentials("old", "pw")
    assert not fallback.public


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_FALLBACK_REGISTRY_HOST": "docker.io"},
            "CREV_FALLBACK_REGISTRY_HOST: a fallback needs a public route or server-side "
            "credentials (a client's token is for the primary's realm, so crev could not ask "
            "the fallback)",
        ),
        (
            {**PUBLIC_GHCR, "CREV_FALLBACK_REPO_PREFIX": "acme"},
            "CREV_FALLBACK_REPO_PREFIX is set, but CREV_FALLBACK_REGISTRY_HOST is not",
        ),
        (
            {**PUBLIC_GHCR, "CREV_FALLBACK_REGISTRY_HOST": "https://docker.io"},
            "CREV_FALLBACK_REGISTRY_HOST='https://docker.io': must be a host with an optional "
            "port, like 'ghcr.io' or '127.0.0.1:5000' (no scheme, no path)",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
                "CREV_FALLBACK_REGISTRY_SCHEME": "ftp",
            },
            "CREV_FALLBACK_REGISTRY_SCHEME='ftp': must be 'https' or 'http'",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
                "CREV_FALLBACK_REPO_PREFIX": "Acme",
            },
            "CREV_FALLBACK_REPO_PREFIX='Acme': invalid repository name 'Acme': component 'Acme' "
            "does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_FALLBACK_REGISTRY_HOST": "ghcr.io",
                "CREV_FALLBACK_REPO_PREFIX": "acme",
            },
            "CREV_FALLBACK_REGISTRY_HOST: the fallback is the route's own upstream and namespace",
        ),
        (
            {
                **PUBLIC_GHCR,
                "CREV_FALLBACK_REGISTRY_HOST": "docker.io",
                "CREV_FALLBACK_UPSTREAM_USERNAME": "old",
            },
            "CREV_FALLBACK_UPSTREAM_PASSWORD is not set, but its pair is",
        ),
    ],
)
def test_single_route_fallback_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_a_route_takes_a_fallback_option() -> None:
    settings = Settings.from_env(
        {
            "CREV_ROUTES": "tools/=ghcr.io/acme/tools;public;fallback=http://old.example:5000/acme,"
            " =ghcr.io/acme;credentials=GH;fallback=docker.io/acme;fallback-credentials=HUB",
            "CREV_GH_TOKEN": "t",
            "CREV_HUB_USERNAME": "u",
            "CREV_HUB_PASSWORD": "p",
        }
    )
    tools = settings.routes.by_prefix("tools/")
    rest = settings.routes.by_prefix("")
    assert tools is not None and tools.fallback is not None
    assert tools.fallback.vanity_prefix == "tools/"
    assert tools.fallback.upstream.origin == Origin("http", "old.example:5000")
    assert tools.fallback.namespace == Namespace("acme")
    assert rest is not None and rest.fallback is not None
    assert rest.fallback.upstream.auth == RealmCredentials("u", "p")
    assert rest.fallback.namespace == Namespace("acme", official_images=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "=ghcr.io/acme;fallback=docker.io/acme",
            "CREV_ROUTES entry '=ghcr.io/acme;fallback=docker.io/acme': fallback: a fallback "
            "needs a public route or server-side credentials (a client's token is for the "
            "primary's realm, so crev could not ask the fallback)",
        ),
        (
            "=ghcr.io/acme;public;fallback=ftp://docker.io",
            "CREV_ROUTES entry '=ghcr.io/acme;public;fallback=ftp://docker.io': fallback: "
            "scheme must be http or https, not 'ftp'",
        ),
        (
            "=ghcr.io/acme;public;fallback=docker.io/Acme",
            "CREV_ROUTES entry '=ghcr.io/acme;public;fallback=docker.io/Acme': fallback: 'Acme': "
            "invalid repository name 'Acme': component 'Acme' does not match "
            "[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
        ),
        (
            "=ghcr.io/acme;public;fallback-credentials=HUB",
            "CREV_ROUTES entry '=ghcr.io/acme;public;fallback-credentials=HUB': "
            "fallback-credentials is set, but fallback is not",
        ),
    ],
)
def test_route_fallback_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": value, "CREV_HUB_TOKEN": "t"})
    assert str(caught.value) == message


def test_the_tag_ttl_is_read() -> None:
    assert Settings.from_env(PUBLIC_GHCR).tag_cache_seconds == 0
    # 0 turns it off, on any route, as unset does.
    assert Settings.from_env({**PUBLIC_GHCR, "CREV_TAG_CACHE_SECONDS": "0"}).tag_cache_seconds == 0
    assert (
        Settings.from_env(
            {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_TAG_CACHE_SECONDS": "0"}
        ).tag_cache_seconds
        == 0
    )
    assert (
        Settings.from_env({**PUBLIC_GHCR, "CREV_TAG_CACHE_SECONDS": "300"}).tag_cache_seconds == 300
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {**PUBLIC_GHCR, "CREV_TAG_CACHE_SECONDS": "5m"},
            "CREV_TAG_CACHE_SECONDS='5m': must be seconds between 0 (off) and 31536000",
        ),
        (
            {**PUBLIC_GHCR, "CREV_TAG_CACHE_SECONDS": "-1"},
            "CREV_TAG_CACHE_SECONDS='-1': must be seconds between 0 (off) and 31536000",
        ),
        (
            {**PUBLIC_GHCR, "CREV_TAG_CACHE_SECONDS": "31536001"},
            "CREV_TAG_CACHE_SECONDS='31536001': must be seconds between 0 (off) and 31536000",
        ),
        (
            {"CREV_REGISTRY_HOST": "ghcr.io", "CREV_TAG_CACHE_SECONDS": "60"},
            "CREV_TAG_CACHE_SECONDS='60': tags are kept at the edge on public routes only, and no "
            "route is public (CREV_PUBLIC=1, or ;public on a route)",
        ),
    ],
)
def test_the_tag_ttl_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_routes_and_the_single_routes_fallback_are_one_or_the_other() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"CREV_ROUTES": "=ghcr.io/acme;public", "CREV_FALLBACK_REGISTRY_HOST": "docker.io"}
        )
    assert str(caught.value) == (
        "CREV_ROUTES is set, and so is CREV_FALLBACK_REGISTRY_HOST: use one or the other"
    )
