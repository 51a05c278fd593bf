"""Token scopes and their mapping across the prefix (crev/scope.py)."""

from __future__ import annotations

import pytest

from crev.errors import InvalidScopeError
from crev.names import Namespace
from crev.routing import Route
from crev.scope import Scope, parse_scopes, scope_to_upstream, scope_to_vanity
from crev.urls import DOCKER_HUB, Origin
from tests.support.routes import route_to

ACME = Namespace("acme")
TEAM = Namespace("org/team")
NONE = Namespace("")


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("repository:a/b:pull", Scope("repository", "a/b", ("pull",))),
        ("repository:a/b:pull,push", Scope("repository", "a/b", ("pull", "push"))),
        ("repository:a:*", Scope("repository", "a", ("*",))),
        ("repository:a:pull,*", Scope("repository", "a", ("pull", "*"))),
        ("repository:a:delete", Scope("repository", "a", ("delete",))),
        ("repository(plugin):a:pull", Scope("repository", "a", ("pull",), "plugin")),
        ("repository(Plugin2):a:pull", Scope("repository", "a", ("pull",), "Plugin2")),
        ("registry:catalog:*", Scope("registry", "catalog", ("*",))),
        ("repository:host:5000/a:pull", Scope("repository", "host:5000/a", ("pull",))),
        (
            "repository:host:5000/a/b:pull,push",
            Scope("repository", "host:5000/a/b", ("pull", "push")),
        ),
        ("repository:a::pull", Scope("repository", "a:", ("pull",))),
        ("repository:[::1]:5000/a:pull", Scope("repository", "[::1]:5000/a", ("pull",))),
        ("repository:A/B:pull", Scope("repository", "A/B", ("pull",))),
        ("x1:y:z", Scope("x1", "y", ("z",))),
    ],
)
def test_parse_and_format(text: str, scope: Scope) -> None:
    assert Scope.parse(text) == scope
    assert str(scope) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "scope '' is not type:name:actions"),
        ("repository", "scope 'repository' is not type:name:actions"),
        ("repository:a", "scope 'repository:a' is not type:name:actions"),
        ("repository::pull", "scope 'repository::pull' is not type:name:actions"),
        (":", "scope ':' is not type:name:actions"),
        ("::", "scope '::' is not type:name:actions"),
        (":a:pull", "scope ':a:pull' has an invalid resource type ''"),
        (
            "Repository:a:pull",
            "scope 'Repository:a:pull' has an invalid resource type 'Repository'",
        ),
        (
            "repo-sitory:a:pull",
            "scope 'repo-sitory:a:pull' has an invalid resource type 'repo-sitory'",
        ),
        (
            "repository(:a:pull",
            "scope 'repository(:a:pull' has an invalid resource type 'repository('",
        ),
        ("repository():a:pull", "scope 'repository():a:pull' has an invalid resource class"),
        ("repository(a-b):a:pull", "scope 'repository(a-b):a:pull' has an invalid resource class"),
        (
            "repository(a)(b):x:pull",
            "scope 'repository(a)(b):x:pull' has an invalid resource class",
        ),
        ("repository:a:", "scope 'repository:a:' has invalid actions ''"),
        ("repository:a:PULL", "scope 'repository:a:PULL' has invalid actions 'PULL'"),
        ("repository:a:pull,", "scope 'repository:a:pull,' has invalid actions 'pull,'"),
        (
            "repository:a:pull,,push",
            "scope 'repository:a:pull,,push' has invalid actions 'pull,,push'",
        ),
        ("repository:a:pu ll", "scope 'repository:a:pu ll' has invalid actions 'pu ll'"),
        ("repository:a:**", "scope 'repository:a:**' has invalid actions '**'"),
        ("repository:a b:pull", "scope 'repository:a b:pull' has an invalid name"),
        ("repository:a\tb:pull", "scope 'repository:a\\tb:pull' has an invalid name"),
        ("repository:a\x00:pull", "scope 'repository:a\\x00:pull' has an invalid name"),
        ("repository:a\u00a0:pull", "scope 'repository:a\\xa0:pull' has an invalid name"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidScopeError) as caught:
        Scope.parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_with_name_keeps_everything_else() -> None:
    scope = Scope("repository", "a", ("pull", "push"), "plugin")
    assert scope.with_name("acme/a") == Scope("repository", "acme/a", ("pull", "push"), "plugin")
    assert scope.name == "a"


def test_parse_scopes_splits_on_any_whitespace() -> None:
    assert parse_scopes("repository:a:pull  repository:b:push\tregistry:catalog:*\n") == [
        Scope("repository", "a", ("pull",)),
        Scope("repository", "b", ("push",)),
        Scope("registry", "catalog", ("*",)),
    ]


def test_parse_scopes_empty() -> None:
    assert parse_scopes("") == []
    assert parse_scopes("   ") == []


def test_parse_scopes_refuses_any_invalid_member() -> None:
    with pytest.raises(InvalidScopeError) as caught:
        parse_scopes("repository:a:pull bogus")
    assert str(caught.value) == "scope 'bogus' is not type:name:actions"


# --- scope_to_vanity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "text", "expected"),
    [
        (ACME, "repository:acme/tool:pull", "repository:tool:pull"),
        (ACME, "repository:acme/team/tool:pull,push", "repository:team/tool:pull,push"),
        (ACME, "repository(plugin):acme/tool:pull", "repository(plugin):tool:pull"),
        (ACME, "repository:acme/acme:pull", "repository:acme:pull"),
        (TEAM, "repository:org/team/tool:pull", "repository:tool:pull"),
        (NONE, "repository:tool:pull", "repository:tool:pull"),
        (NONE, "repository:a/b:*", "repository:a/b:*"),
    ],
)
def test_scope_to_client(namespace: Namespace, text: str, expected: str) -> None:
    mapped = scope_to_vanity(Scope.parse(text), namespace)
    assert mapped is not None
    assert str(mapped) == expected


@pytest.mark.parametrize(
    ("namespace", "text"),
    [
        (ACME, "repository:user/image:pull"),  # ghcr.io's placeholder
        (ACME, "repository:acme:pull"),
        (ACME, "repository:acmefoo/x:pull"),
        (ACME, "repository:other/acme/x:pull"),
        (ACME, "repository:acme/X:pull"),
        (ACME, "repository:acme/../x:pull"),
        (TEAM, "repository:org/x:pull"),
        (ACME, "registry:catalog:*"),
        (NONE, "registry:catalog:*"),
        (ACME, "repositoryx:acme/tool:pull"),
        (NONE, "repository:host:5000/a:pull"),
        (NONE, "repository:A:pull"),
    ],
)
def test_scope_to_client_drops(namespace: Namespace, text: str) -> None:
    assert scope_to_vanity(Scope.parse(text), namespace) is None


# --- scope_to_upstream ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "text", "expected"),
    [
        (ACME, "repository:tool:pull", "repository:acme/tool:pull"),
        (ACME, "repository:team/tool:pull,push", "repository:acme/team/tool:pull,push"),
        (ACME, "repository(plugin):tool:pull", "repository(plugin):acme/tool:pull"),
        (ACME, "repository:acme/tool:pull", "repository:acme/acme/tool:pull"),
        (ACME, "repository:user/image:pull", "repository:acme/user/image:pull"),
        (TEAM, "repository:tool:*", "repository:org/team/tool:*"),
        (NONE, "repository:tool:pull", "repository:tool:pull"),
    ],
)
def test_scope_to_upstream(namespace: Namespace, text: str, expected: str) -> None:
    mapped = scope_to_upstream(Scope.parse(text), namespace)
    assert mapped is not None
    assert str(mapped) == expected


@pytest.mark.parametrize(
    ("namespace", "text"),
    [
        (ACME, "registry:catalog:*"),
        (NONE, "registry:catalog:*"),
        (ACME, "repositoryx:tool:pull"),
        (ACME, "repository:host:5000/a:pull"),
        (ACME, "repository:../x:pull"),
        (ACME, "repository:a//b:pull"),
        (ACME, "repository:A:pull"),
        (ACME, "repository:a%2F..:pull"),
        (ACME, "repository:" + "a" * 251 + ":pull"),  # too long under the prefix
        (NONE, "repository:" + "a" * 256 + ":pull"),
        (NONE, "repository:host:5000/a:pull"),
    ],
)
def test_scope_to_upstream_drops(namespace: Namespace, text: str) -> None:
    assert scope_to_upstream(Scope.parse(text), namespace) is None


def test_scope_to_upstream_longest_name_under_prefix() -> None:
    name = "a" * 250
    mapped = scope_to_upstream(Scope.parse(f"repository:{name}:pull"), ACME)
    assert mapped == Scope("repository", f"acme/{name}", ("pull",))


HUB = route_to("hub/", Origin("https", DOCKER_HUB), Namespace("", official_images=True))
TOOLS = route_to("tools/", Origin("https", "ghcr.io"), Namespace("acme/tools"))


@pytest.mark.parametrize(
    ("mapping", "client", "upstream"),
    [
        (HUB, "repository:hub/alpine:pull", "repository:library/alpine:pull"),
        (HUB, "repository:hub/bitnami/redis:pull", "repository:bitnami/redis:pull"),
        (TOOLS, "repository:tools/x:pull,push", "repository:acme/tools/x:pull,push"),
    ],
)
def test_scopes_through_routes(mapping: Route, client: str, upstream: str) -> None:
    assert str(scope_to_upstream(Scope.parse(client), mapping)) == upstream
    assert str(scope_to_vanity(Scope.parse(upstream), mapping)) == client


def test_route_drops_scopes_outside_it() -> None:
    assert scope_to_vanity(Scope.parse("repository:acme/other:pull"), TOOLS) is None
    assert scope_to_vanity(Scope.parse("registry:catalog:*"), HUB) is None
