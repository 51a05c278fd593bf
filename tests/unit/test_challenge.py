"""`WWW-Authenticate` parsing and rewriting (crev/rewrite/challenge.py)."""

from __future__ import annotations

import pytest

from crev.errors import MalformedHeaderError
from crev.names import NameMapping, Namespace
from crev.rewrite.challenge import (
    Challenge,
    format_challenges,
    parse_challenges,
    rewrite_challenges,
    vanity_scopes,
)
from crev.urls import DOCKER_HUB, URL, Origin
from tests.support.routes import route_to

ACME = Namespace("acme")
NONE = Namespace("")
ENDPOINT = URL.parse("https://vanity.example/api/token")


def rewrite_challenge(header: str, token_endpoint: URL, mapping: NameMapping) -> str:
    return rewrite_challenges(parse_challenges(header), token_endpoint, mapping)


# --- parse_challenges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            [
                Challenge(
                    "Bearer",
                    [("realm", "https://auth.docker.io/token"), ("service", "registry.docker.io")],
                )
            ],
        ),
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:user/image:pull"',
            [
                Challenge(
                    "Bearer",
                    [
                        ("realm", "https://ghcr.io/token"),
                        ("service", "ghcr.io"),
                        ("scope", "repository:user/image:pull"),
                    ],
                )
            ],
        ),
        # Quoted strings holding commas, spaces, '=' and escaped quotes and backslashes.
        (
            'Bearer realm="a, b", scope="repository:a:pull,push repository:b:pull"',
            [
                Challenge(
                    "Bearer",
                    [("realm", "a, b"), ("scope", "repository:a:pull,push repository:b:pull")],
                )
            ],
        ),
        (
            r'Bearer realm="say \"hi\", a\\b = c"',
            [Challenge("Bearer", [("realm", 'say "hi", a\\b = c')])],
        ),
        (r'Bearer realm="\x"', [Challenge("Bearer", [("realm", "x")])]),
        ('Bearer realm=""', [Challenge("Bearer", [("realm", "")])]),
        # Several challenges in one header.
        (
            'Bearer realm="x",service="y", Basic realm="z"',
            [
                Challenge("Bearer", [("realm", "x"), ("service", "y")]),
                Challenge("Basic", [("realm", "z")]),
            ],
        ),
        (
            'Basic realm="z", Bearer realm="x"',
            [Challenge("Basic", [("realm", "z")]), Challenge("Bearer", [("realm", "x")])],
        ),
        ("Basic, Bearer", [Challenge("Basic"), Challenge("Bearer")]),
        # Unquoted token values.
        (
            "Bearer realm=x, error=invalid_token",
            [Challenge("Bearer", [("realm", "x"), ("error", "invalid_token")])],
        ),
        # Token68.
        ("Negotiate abc", [Challenge("Negotiate", token68="abc")]),
        ("Basic ab/c+d", [Challenge("Basic", token68="ab/c+d")]),
        (
            'Negotiate abc, Bearer realm="x"',
            [Challenge("Negotiate", token68="abc"), Challenge("Bearer", [("realm", "x")])],
        ),
        # Case of the scheme is kept; extra whitespace and empty list elements are ignored.
        ('BEARER realm="x"', [Challenge("BEARER", [("realm", "x")])]),
        ('bearer realm="x"', [Challenge("bearer", [("realm", "x")])]),
        (
            '  ,, Bearer   realm = "x" , ,\t service="y"  , ,  Basic realm="z" ,  ',
            [
                Challenge("Bearer", [("realm", "x"), ("service", "y")]),
                Challenge("Basic", [("realm", "z")]),
            ],
        ),
        ("Bearer", [Challenge("Bearer")]),
        ("Bearer ,", [Challenge("Bearer")]),
        # Duplicate parameters are kept in order.
        ('Bearer a="1",a="2"', [Challenge("Bearer", [("a", "1"), ("a", "2")])]),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        ",",
        " , ,",
        '"Bearer"',
        '=realm="x"',
        'Bearer realm="x',
        'Bearer realm="x\\',
        'Bearer realm="x" service="y"',
        "Bearer realm=x service=y",
        'Bearer realm=,service="y"',
        'Bearer realm="x";service="y"',
        'Bearer realm="x"garbage',
        'Bearer realm="x",,=',
        'Bearer realm=="x"',
        "Bearer realm=@",
    ],
)
def test_parse_challenges_refuses_malformed(header: str) -> None:
    with pytest.raises(MalformedHeaderError):
        parse_challenges(header)


def test_malformed_error_message_says_where() -> None:
    with pytest.raises(MalformedHeaderError) as caught:
        parse_challenges('Bearer realm="x" service="y"')
    assert str(caught.value) == (
        "expected ',' between auth-params at position 17 of 'Bearer realm=\"x\" service=\"y\"'"
    )


def test_empty_header_error_message() -> None:
    with pytest.raises(MalformedHeaderError) as caught:
        parse_challenges(" , ")
    assert str(caught.value) == "no challenge in ' , '"


@pytest.mark.parametrize(
    ("header", "token68"),
    [
        ("Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("Negotiate abc=", "abc="),
        # Grammatically a token68 too: an auth-param always has a value after '='.
        ("Bearer realm=", "realm="),
    ],
)
def test_token68_with_base64_padding(header: str, token68: str) -> None:
    # '=' followed by '=', ',' or the end can only be token68 padding (RFC 7235 section 2.1).
    assert parse_challenges(header) == [Challenge(header.split()[0], token68=token68)]


def test_token68_must_be_followed_by_a_comma_or_the_end() -> None:
    # `1#challenge` separates challenges with commas: `def` after a token68 is no second
    # challenge's scheme, and the header is refused rather than read as two.
    with pytest.raises(MalformedHeaderError):
        parse_challenges("Negotiate abc def")


def test_unquoted_realm_url() -> None:
    # Real registries put a realm URL unquoted; '/' and ':' are read as part of the value.
    assert parse_challenges("Bearer realm=https://auth.example/token,service=registry") == [
        Challenge("Bearer", [("realm", "https://auth.example/token"), ("service", "registry")])
    ]


# --- Challenge helpers ------------------------------------------------------------------------


def test_is_bearer_is_case_insensitive() -> None:
    assert Challenge("Bearer").is_bearer is True
    assert Challenge("bEaReR").is_bearer is True
    assert Challenge("Basic").is_bearer is False
    assert Challenge("Bearerx").is_bearer is False


def test_get_is_case_insensitive_and_first_wins() -> None:
    challenge = Challenge("Bearer", [("Realm", "one"), ("realm", "two")])
    assert challenge.get("REALM") == "one"
    assert challenge.get("service") is None


def test_with_param_replaces_in_place_keeping_key_case() -> None:
    challenge = Challenge("Bearer", [("Realm", "a"), ("service", "s"), ("realm", "b")])
    replaced = challenge.with_param("realm", "new")
    assert replaced == Challenge("Bearer", [("Realm", "new"), ("service", "s")])
    assert challenge.params == [("Realm", "a"), ("service", "s"), ("realm", "b")]


def test_with_param_appends_when_absent_and_removes_with_none() -> None:
    challenge = Challenge("Bearer", [("service", "s")])
    assert challenge.with_param("realm", "r").params == [("service", "s"), ("realm", "r")]
    assert challenge.with_param("service", None).params == []
    assert challenge.with_param("absent", None).params == [("service", "s")]


def test_format() -> None:
    assert Challenge("Basic").format() == "Basic"
    assert Challenge("Negotiate", token68="abc==").format() == "Negotiate abc=="
    assert (
        Challenge("Bearer", [("realm", 'a "b" \\c'), ("service", "s, t")]).format()
        == r'Bearer realm="a \"b\" \\c",service="s, t"'
    )


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=y", "a\nb", "a\rb", "a\x00b", "a\x7fb"])
def test_format_refuses_control_characters(value: str) -> None:
    with pytest.raises(MalformedHeaderError):
        Challenge("Bearer", [("realm", value)]).format()


def test_format_allows_tab() -> None:
    assert Challenge("Bearer", [("realm", "a\tb")]).format() == 'Bearer realm="a\tb"'


def test_format_challenges_joins_with_comma_space() -> None:
    assert (
        format_challenges([Challenge("Bearer", [("realm", "x")]), Challenge("Basic")])
        == 'Bearer realm="x", Basic'
    )


# --- vanity_scopes and rewrite_challenge -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("repository:acme/tool:pull", "repository:tool:pull"),
        (
            "repository:acme/a:pull repository:other/b:pull repository:acme/c:push",
            "repository:a:pull repository:c:push",
        ),
        ("repository:user/image:pull", None),
        ("registry:catalog:*", None),
        ("", None),
        ("not a scope", None),
        ("repository:acme/a:pull bogus", None),
    ],
)
def test_client_scope(value: str, expected: str | None) -> None:
    assert vanity_scopes(value, ACME) == expected


@pytest.mark.parametrize(
    ("header", "namespace", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
            ACME,
            f'Bearer realm="{ENDPOINT}",service="registry.docker.io"',
        ),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:acme/tool:pull"',
            ACME,
            f'Bearer realm="{ENDPOINT}",service="registry.docker.io",scope="repository:tool:pull"',
        ),
        # Every scope is mapped; those outside the prefix are dropped.
        (
            'Bearer realm="r",scope="repository:acme/a:pull,push repository:other/x:pull '
            'repository:acme/team/b:pull"',
            ACME,
            f'Bearer realm="{ENDPOINT}",scope="repository:a:pull,push repository:team/b:pull"',
        ),
        # ghcr.io's placeholder scope: nothing left, so no scope parameter at all.
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
            'scope="repository:user/image:pull"',
            ACME,
            f'Bearer realm="{ENDPOINT}",service="ghcr.io"',
        ),
        (
            'Bearer realm="r",scope="registry:catalog:*",service="s"',
            ACME,
            f'Bearer realm="{ENDPOINT}",service="s"',
        ),
        # An unparseable scope is dropped, never passed on unmapped.
        ('Bearer realm="r",scope="???"', ACME, f'Bearer realm="{ENDPOINT}"'),
        # The error parameters of an insufficient-scope answer are kept, in order.
        (
            'Bearer realm="r",service="s",scope="repository:acme/a:pull",'
            'error="insufficient_scope",error_description="no, really"',
            ACME,
            f'Bearer realm="{ENDPOINT}",service="s",scope="repository:a:pull",'
            'error="insufficient_scope",error_description="no, really"',
        ),
        # A realm missing upstream is added.
        ('Bearer service="s"', ACME, f'Bearer service="s",realm="{ENDPOINT}"'),
        # Parameter names keep their case; scope is found case-insensitively.
        (
            'bearer Realm="r",Scope="repository:acme/a:pull"',
            ACME,
            f'bearer Realm="{ENDPOINT}",Scope="repository:a:pull"',
        ),
        # Empty prefix: names pass unchanged, the realm is still replaced.
        (
            'Bearer realm="r",scope="repository:tool:pull"',
            NONE,
            f'Bearer realm="{ENDPOINT}",scope="repository:tool:pull"',
        ),
        # Basic challenges (and token68 ones) are untouched; Bearer ones beside them rewritten.
        ('Basic realm="Registry Realm"', ACME, 'Basic realm="Registry Realm"'),
        (
            'Basic realm="b", Bearer realm="r",scope="repository:acme/a:pull"',
            ACME,
            f'Basic realm="b", Bearer realm="{ENDPOINT}",scope="repository:a:pull"',
        ),
        ("Negotiate abc", ACME, "Negotiate abc"),
        # Reformatting normalises whitespace and quoting.
        (
            "Bearer   realm = r ,  service = s",
            ACME,
            f'Bearer realm="{ENDPOINT}",service="s"',
        ),
    ],
)
def test_rewrite_challenge(header: str, namespace: Namespace, expected: str) -> None:
    assert rewrite_challenge(header, ENDPOINT, namespace) == expected


def test_rewrite_challenge_quotes_the_endpoint() -> None:
    assert (
        rewrite_challenge('Bearer realm="r"', URL.parse('https://a"b/t'), ACME)
        == 'Bearer realm="https://a\\"b/t"'
    )


def test_rewrite_challenge_raises_on_malformed() -> None:
    with pytest.raises(MalformedHeaderError):
        rewrite_challenge('Bearer realm="r" x', ENDPOINT, ACME)


def test_rewrite_challenge_refuses_control_characters_in_the_endpoint() -> None:
    with pytest.raises(MalformedHeaderError):
        rewrite_challenge('Bearer realm="r"', URL(Origin("https", "a\r\nb"), "/t"), ACME)


def test_rewrite_challenge_with_a_route() -> None:
    tools = route_to("tools/", Origin("https", "ghcr.io"), Namespace("acme/tools"))
    header = (
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",'
        'scope="repository:acme/tools/x:pull repository:acme/other:pull"'
    )
    assert rewrite_challenge(header, ENDPOINT, tools) == (
        f'Bearer realm="{ENDPOINT}",service="ghcr.io",scope="repository:tools/x:pull"'
    )


def test_rewrite_challenge_with_official_images() -> None:
    hub = route_to("", Origin("https", DOCKER_HUB), Namespace("", official_images=True))
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/alpine:pull repository:bitnami/redis:pull"'
    )
    assert rewrite_challenge(header, ENDPOINT, hub) == (
        f'Bearer realm="{ENDPOINT}",service="registry.docker.io",'
        'scope="repository:alpine:pull repository:bitnami/redis:pull"'
    )
