"""Settings from `CREV_*` variables (crev/config.py)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from crev.config import DEFAULT_TIMEOUT, ConfigError, Settings, read_settings
from crev.errors import RegistryError
from crev.names import Namespace
from crev.routing import Route
from crev.upstream.auth import ClientLogin, RealmCredentials, StaticToken
from crev.urls import DOCKER_HUB, URL, Origin
from tests.support.routes import route_to

SINGLE_VARIABLES = [
    "CREV_REGISTRY_HOST",
    "CREV_REGISTRY_SCHEME",
    "CREV_REPO_PREFIX",
    "CREV_TOKEN_URL",
    "CREV_TOKEN_REALM",
    "CREV_UPSTREAM_TIMEOUT",
]


def route(env: Mapping[str, str]) -> Route:
    """The single route the single-upstream variables describe."""
    settings = Settings.from_env(env)
    assert len(settings.routes.routes) == 1
    return settings.routes.default


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.routes.routes == (
        route_to("", Origin("https", "registry-1.docker.io"), Namespace("", official_images=True)),
    )
    assert settings.token_url == "/api/token"
    assert settings.timeout == 30.0
    assert DOCKER_HUB == "registry-1.docker.io"
    assert DEFAULT_TIMEOUT == 30.0
    default = settings.routes.default
    assert default.upstream.auth == ClientLogin()
    assert default.upstream.configured_realm is None
    assert default.namespace.prefix == ""


def test_empty_values_mean_defaults() -> None:
    empty = {key: "" for key in SINGLE_VARIABLES}
    assert Settings.from_env(empty) == Settings.from_env({})
    blank = {key: "  " for key in SINGLE_VARIABLES}
    assert Settings.from_env(blank) == Settings.from_env({})


def test_all_single_route_variables() -> None:
    settings = Settings.from_env(
        {
            "CREV_REGISTRY_HOST": "ghcr.io",
            "CREV_REGISTRY_SCHEME": "https",
            "CREV_REPO_PREFIX": "acme",
            "CREV_TOKEN_URL": "/token",
            "CREV_TOKEN_REALM": "https://ghcr.io/token",
            "CREV_UPSTREAM_TIMEOUT": "12.5",
            "UNRELATED": "x",
        }
    )
    assert settings.routes.routes == (
        route_to(
            "",
            Origin("https", "ghcr.io"),
            Namespace("acme"),
            None,
            URL(Origin("https", "ghcr.io"), "/token"),
        ),
    )
    assert settings.token_url == "/token"
    assert settings.timeout == 12.5


# --- CREV_REGISTRY_HOST -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("docker.io", DOCKER_HUB),
        ("index.docker.io", DOCKER_HUB),
        ("DOCKER.IO", DOCKER_HUB),
        (" docker.io ", DOCKER_HUB),
        ("registry-1.docker.io", DOCKER_HUB),
        ("ghcr.io", "ghcr.io"),
        ("GHCR.IO", "ghcr.io"),
        ("  quay.io\t", "quay.io"),
        ("ghcr.io:443", "ghcr.io:443"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000"),
        ("us-docker.pkg.dev", "us-docker.pkg.dev"),
        ("[::1]", "[::1]"),
        ("[::1]:5000", "[::1]:5000"),
    ],
)
def test_registry_host(value: str, host: str) -> None:
    assert route({"CREV_REGISTRY_HOST": value}).upstream.origin == Origin("https", host)


@pytest.mark.parametrize(
    ("value", "official"), [("docker.io", True), ("ghcr.io", False), ("127.0.0.1:5000", False)]
)
def test_official_images_default_follows_docker_hub(value: str, official: bool) -> None:
    assert route({"CREV_REGISTRY_HOST": value}).namespace.official_images is official


@pytest.mark.parametrize(
    "value",
    [
        "https://ghcr.io",
        "http://ghcr.io",
        "ghcr.io/path",
        "ghcr.io/",
        "host:abc",
        "host:",
        "host:99999",
        "host:-1",
        "host:+5",
        "host: 5",
        "ghcr.io:443:1",
        "a b",
        "user@ghcr.io",
        "user:pw@ghcr.io",
        "ghcr.io?x",
        "ghcr.io#x",
        "gh\\cr.io",
        "gh\tcr.io",
        "gh\ncr.io",
        "::1",
        "[::1]:abc",
        ":5000",
    ],
)
def test_registry_host_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_REGISTRY_HOST": value})
    assert str(caught.value) == (
        f"CREV_REGISTRY_HOST={value!r}: must be a host with an optional port, like 'ghcr.io' "
        "or '127.0.0.1:5000' (no scheme, no path)"
    )


@pytest.mark.parametrize("value", ["[::1", "::1]", "[::1:5000", "[a]", "[ghcr.io]:5000"])
def test_registry_host_with_broken_brackets_is_a_config_error(value: str) -> None:
    # An unbalanced or non-IP bracketed host is a ConfigError naming the variable (which the
    # handler answers as a registry JSON error), never the ValueError urlsplit raises for it.
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_REGISTRY_HOST": value})
    assert str(caught.value).startswith(f"CREV_REGISTRY_HOST={value!r}: ")


# --- CREV_REGISTRY_SCHEME ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scheme"),
    [("https", "https"), ("http", "http"), ("HTTP", "http"), (" https ", "https")],
)
def test_registry_scheme(value: str, scheme: str) -> None:
    upstream = route(
        {"CREV_REGISTRY_SCHEME": value, "CREV_REGISTRY_HOST": "reg:5000"}
    ).upstream.origin
    assert upstream == Origin(scheme, "reg:5000")
    assert str(upstream) == f"{scheme}://reg:5000"


@pytest.mark.parametrize("value", ["ftp", "https://", "http:", "ws", "httpss"])
def test_registry_scheme_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_REGISTRY_SCHEME": value})
    assert str(caught.value) == f"CREV_REGISTRY_SCHEME={value!r}: must be 'https' or 'http'"


# --- CREV_REPO_PREFIX -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "prefix"), [("acme", "acme"), ("/acme/", "acme"), ("org/team", "org/team")]
)
def test_repo_prefix(value: str, prefix: str) -> None:
    namespace = route({"CREV_REPO_PREFIX": value, "CREV_REGISTRY_HOST": "ghcr.io"}).namespace
    assert namespace == Namespace(prefix)


@pytest.mark.parametrize(
    "value",
    [
        "Acme",
        "acme//x",
        "acme//team",
        "../acme",
        "..",
        "acme/../x",
        "acme%2Fx",
        "\u0430cme",
        "a" * 256,
        "acme-",
        "a b",
    ],
)
def test_repo_prefix_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_REPO_PREFIX": value})
    assert str(caught.value).startswith(f"CREV_REPO_PREFIX={value.strip().strip('/')!r}: ")
    assert not isinstance(caught.value, RegistryError)
    assert caught.value.__cause__ is None


def test_repo_prefix_refusal_says_why() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_REPO_PREFIX": "Bad"})
    assert str(caught.value) == (
        "CREV_REPO_PREFIX='Bad': invalid repository name 'Bad': component 'Bad' does not match "
        "[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"
    )


# --- CREV_UPSTREAM_TIMEOUT --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10", 10.0), ("0.5", 0.5), ("900", 900.0), (" 5 ", 5.0), ("1e2", 100.0), ("0.001", 0.001)],
)
def test_timeout(value: str, seconds: float) -> None:
    assert Settings.from_env({"CREV_UPSTREAM_TIMEOUT": value}).timeout == seconds


@pytest.mark.parametrize(
    "value", ["0", "-1", "900.5", "901", "abc", "nan", "inf", "-inf", "10s", "1,5"]
)
def test_timeout_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_UPSTREAM_TIMEOUT": value})
    assert str(caught.value) == (
        f"CREV_UPSTREAM_TIMEOUT={value!r}: must be a number of seconds above 0 and at most 900"
    )


# --- CREV_* names that no setting reads -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("CREV_REGISTRY", " (did you mean CREV_REGISTRY_HOST?)"),
        ("CREV_PREFIX", " (did you mean CREV_REPO_PREFIX?)"),
        ("CREV_REGISTRY_HOTS", " (did you mean CREV_REGISTRY_HOST?)"),
        ("CREV_ALLOW_PUSHES", " (did you mean CREV_ALLOW_PUSH?)"),
        ("CREV_UPSTREAM_PASSWD", " (did you mean CREV_UPSTREAM_PASSWORD?)"),
        ("CREV_ACME_TOKEN", " (no CREV_ROUTES entry has ;credentials=ACME)"),
        ("CREV_SOMETHING", ""),
    ],
)
def test_a_crev_variable_no_setting_reads_is_warned_about(name: str, hint: str) -> None:
    settings, warnings = read_settings({name: "1", "CREV_REGISTRY_HOST": "ghcr.io"})
    assert settings.routes.default.upstream.host == "ghcr.io"
    assert warnings == [f"{name} is set, but crev has no such setting: it is ignored{hint}"]


def test_named_credentials_and_other_variables_go_without_a_warning() -> None:
    # Every setting of the README's table does too: tests/unit/test_readme.py.
    env = {name: "" for name in ("PORT", "VERCEL_PYTHON_COMPILEALL", "HOME", "CREVASSE")}
    routes = {
        **env,
        "CREV_ROUTES": "tools/=ghcr.io/acme;credentials=ACME, =docker.io;credentials=HUB",
        "CREV_ACME_TOKEN": "t",
        "CREV_HUB_USERNAME": "bot",
        "CREV_HUB_PASSWORD": "secret",
    }
    assert read_settings(routes)[1] == []


# --- CREV_TOKEN_URL and CREV_TOKEN_REALM ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("/api/token", "/api/token"),
        (" /token ", "/token"),
        ("/api/token?x=1", "/api/token?x=1"),
        ("https://auth.acme.dev/token", "https://auth.acme.dev/token"),
        ("http://127.0.0.1:8080/api/token", "http://127.0.0.1:8080/api/token"),
        (" https://auth.acme.dev/token ", "https://auth.acme.dev/token"),
    ],
)
def test_token_url(value: str, url: str) -> None:
    assert Settings.from_env({"CREV_TOKEN_URL": value}).token_url == url


@pytest.mark.parametrize(
    "value", ["//evil.example/token", "api/token", "ftp://x/token", "https://", "https:///x", "x"]
)
def test_token_url_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_TOKEN_URL": value})
    assert str(caught.value) == f"CREV_TOKEN_URL={value!r}: must be an absolute http(s) URL"


@pytest.mark.parametrize(
    "value",
    [
        "https://ghcr.io/token",
        "https://auth.docker.io/token?service=registry.docker.io",
        "http://127.0.0.1:5001/auth",
    ],
)
def test_token_realm(value: str) -> None:
    assert str(route({"CREV_TOKEN_REALM": value}).upstream.configured_realm) == value


@pytest.mark.parametrize("value", ["/token", "ghcr.io/token", "ftp://x", "https://", "//ghcr.io/t"])
def test_token_realm_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_TOKEN_REALM": value})
    assert str(caught.value) == f"CREV_TOKEN_REALM={value!r}: must be an absolute http(s) URL"


@pytest.mark.parametrize("variable", ["CREV_TOKEN_URL", "CREV_TOKEN_REALM"])
@pytest.mark.parametrize("value", ["https://[::1/token", "https://[a]/token"])
def test_token_urls_with_broken_brackets_are_config_errors(variable: str, value: str) -> None:
    # As for CREV_REGISTRY_HOST: urlsplit's ValueError becomes a ConfigError naming the variable.
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value) == f"{variable}={value!r}: must be an absolute http(s) URL"


@pytest.mark.parametrize("variable", ["CREV_TOKEN_URL", "CREV_TOKEN_REALM"])
@pytest.mark.parametrize(
    "value", ["https://auth.example:abc/token", "https://auth.example:99999/t"]
)
def test_token_urls_with_invalid_port_are_refused(variable: str, value: str) -> None:
    # A port that is no number or out of range is refused at start-up, not left for docker to
    # fail on when it parses the realm (or for crev when it cannot reach it).
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value) == f"{variable}={value!r}: must be an absolute http(s) URL"


# --- server-side credentials ------------------------------------------------------------------


def test_upstream_credentials() -> None:
    assert route({"CREV_UPSTREAM_USERNAME": "u", "CREV_UPSTREAM_PASSWORD": "p"}).upstream.auth == (
        RealmCredentials("u", "p")
    )
    assert route({"CREV_UPSTREAM_TOKEN": "t"}).upstream.auth == StaticToken("t")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CREV_UPSTREAM_USERNAME": "u"}, "CREV_UPSTREAM_PASSWORD is not set, but its pair is"),
        ({"CREV_UPSTREAM_PASSWORD": "p"}, "CREV_UPSTREAM_USERNAME is not set, but its pair is"),
        (
            {"CREV_UPSTREAM_TOKEN": "t", "CREV_UPSTREAM_USERNAME": "u"},
            "CREV_UPSTREAM_TOKEN is set, and so is CREV_UPSTREAM_USERNAME/PASSWORD: use one",
        ),
    ],
)
def test_upstream_credentials_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message
    assert "secret" not in str(caught.value)


# --- CREV_ROUTES ------------------------------------------------------------------------------


def test_routes() -> None:
    settings = Settings.from_env(
        {"CREV_ROUTES": "tools/=ghcr.io/acme/tools, hub=docker.io\n=http://127.0.0.1:5000/x"}
    )
    assert settings.routes.routes == (
        route_to("tools/", Origin("https", "ghcr.io"), Namespace("acme/tools")),
        route_to("hub/", Origin("https", DOCKER_HUB), Namespace("", official_images=True)),
        route_to("", Origin("http", "127.0.0.1:5000"), Namespace("x")),
    )
    assert settings.routes.has_several is True


def test_route_options() -> None:
    settings = Settings.from_env(
        {
            "CREV_ROUTES": "a=ghcr.io/acme;realm=https://ghcr.io/token;credentials=GH, "
            "b=quay.io;official-images",
            "CREV_GH_TOKEN": "t",
        }
    )
    assert settings.routes.by_prefix("a/") == route_to(
        "a/",
        Origin("https", "ghcr.io"),
        Namespace("acme"),
        StaticToken("t"),
        URL(Origin("https", "ghcr.io"), "/token"),
    )
    assert settings.routes.by_prefix("b/") == route_to(
        "b/", Origin("https", "quay.io"), Namespace("", official_images=True)
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (" , \n", "CREV_ROUTES is set but names no route"),
        ("x", "CREV_ROUTES entry 'x': expected vanity-prefix=host[/namespace]"),
        (
            "tools=ghcr.io, tools/=quay.io",
            "CREV_ROUTES entry 'tools/=quay.io': prefix 'tools/' repeats",
        ),
        ("=ftp://h", "CREV_ROUTES entry '=ftp://h': scheme must be http or https, not 'ftp'"),
        (
            "Tools=ghcr.io",
            "CREV_ROUTES entry 'Tools=ghcr.io': invalid vanity prefix: invalid repository name "
            "'Tools': component 'Tools' does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*",
        ),
        (
            "a=ghcr.io;foo=bar",
            "CREV_ROUTES entry 'a=ghcr.io;foo=bar': unknown option 'foo=bar' "
            "(known: realm=URL, credentials=NAME, official-images, public, follow-redirects, "
            "fallback=HOST[/NAMESPACE], fallback-credentials=NAME, "
            "mirror=HOST[/NAMESPACE], mirror-credentials=NAME)",
        ),
        (
            "a=ghcr.io;credentials=GH",
            "CREV_GH_USERNAME/CREV_GH_PASSWORD or CREV_GH_TOKEN must be set",
        ),
    ],
)
def test_routes_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": value})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "value", ["a=https://ghcr.io/Acme", "a=ghcr.io:abc/x", "a=ghcr.io;realm=/token"]
)
def test_route_entry_errors_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": value})
    assert str(caught.value).startswith("CREV_ROUTES")


@pytest.mark.parametrize("value", ["a=", "a=/acme", "a=;realm=https://r/t"])
def test_route_without_a_host_is_refused(value: str) -> None:
    # The entry grammar is `prefix=[scheme://]host[...]`: a missing host is a typo to refuse,
    # not a request for Docker Hub (the default only an unset CREV_REGISTRY_HOST means).
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": value})
    assert str(caught.value).startswith(f"CREV_ROUTES entry {value!r}: ")


@pytest.mark.parametrize("variable", ["CREV_REGISTRY_HOST", "CREV_REPO_PREFIX", "CREV_TOKEN_REALM"])
def test_routes_conflict_with_single_route_variables(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"CREV_ROUTES": "=ghcr.io", variable: "x"})
    assert str(caught.value) == (f"CREV_ROUTES is set, and so is {variable}: use one or the other")


def test_public_routes() -> None:
    assert not Settings.from_env({}).routes.default.public
    assert Settings.from_env({"CREV_PUBLIC": "1"}).routes.default.public
    routes = Settings.from_env({"CREV_ROUTES": "tools/=ghcr.io/acme;public, =ghcr.io/acme"}).routes
    assert [(route.vanity_prefix, route.public) for route in routes.routes] == [
        ("tools/", True),
        ("", False),
    ]
    with pytest.raises(ConfigError, match="CREV_PUBLIC='maybe'"):
        Settings.from_env({"CREV_PUBLIC": "maybe"})
    with pytest.raises(ConfigError, match="CREV_PUBLIC"):
        Settings.from_env({"CREV_ROUTES": "=ghcr.io/acme", "CREV_PUBLIC": "1"})


def test_routes_that_follow_redirects_to_storage() -> None:
    assert not Settings.from_env({}).routes.default.follow_redirects
    assert Settings.from_env({"CREV_FOLLOW_REDIRECTS": "1"}).routes.default.follow_redirects
    routes = Settings.from_env(
        {"CREV_ROUTES": "tools/=ghcr.io/acme;follow-redirects;public, =ghcr.io/acme"}
    ).routes
    assert [(route.vanity_prefix, route.follow_redirects) for route in routes.routes] == [
        ("tools/", True),
        ("", False),
    ]
    # A fallback's redirects are followed as its route's are.
    moving = Settings.from_env(
        {
            "CREV_FOLLOW_REDIRECTS": "1",
            "CREV_PUBLIC": "1",
            "CREV_FALLBACK_REGISTRY_HOST": "quay.io",
        }
    ).routes.default
    assert moving.fallback is not None and moving.fallback.follow_redirects
    with pytest.raises(ConfigError, match="CREV_FOLLOW_REDIRECTS='sometimes'"):
        Settings.from_env({"CREV_FOLLOW_REDIRECTS": "sometimes"})
    with pytest.raises(ConfigError, match="CREV_FOLLOW_REDIRECTS"):
        Settings.from_env({"CREV_ROUTES": "=ghcr.io/acme", "CREV_FOLLOW_REDIRECTS": "1"})


@pytest.mark.parametrize(
    ("public", "credentials", "write", "client_authorized", "crev_authenticates"),
    [
        (True, False, False, False, True),
        (True, False, False, True, False),
        (True, False, True, False, False),
        (False, False, False, False, False),
        (False, True, True, True, True),
        (True, True, False, True, True),
    ],
)
def test_who_authenticates_to_the_upstream(
    public: bool, credentials: bool, write: bool, client_authorized: bool, crev_authenticates: bool
) -> None:
    env = {"CREV_PUBLIC": "1" if public else "0"}
    if credentials:
        env |= {"CREV_UPSTREAM_USERNAME": "u", "CREV_UPSTREAM_PASSWORD": "p"}
    route = Settings.from_env(env).routes.default
    decided = route.crev_authorizes(write=write, client_authorized=client_authorized)
    assert decided is crev_authenticates
