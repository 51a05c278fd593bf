"""Vanity-prefix routes: which route owns a name, how names map to the upstream and back, and
the route table's order, default and refusals."""

from __future__ import annotations

import pytest

from crev.endpoints import parse_endpoint
from crev.names import Namespace, RepositoryName, vanity_name_of
from crev.routing import Route, RouteTable
from crev.upstream.auth import RealmCredentials, StaticToken
from crev.urls import DOCKER_HUB, Origin
from tests.support.refusals import refused
from tests.support.routes import route_to


def name(text: str) -> RepositoryName:
    return RepositoryName(text)


GHCR = Origin("https", "ghcr.io")
HUB = Origin("https", DOCKER_HUB)
TOOLS = route_to("tools/", GHCR, Namespace("acme/tools"))
HUB_ROUTE = route_to("hub/", HUB, Namespace("", official_images=True))
REST = route_to("", GHCR, Namespace("acme"))
TABLE = RouteTable((REST, TOOLS, HUB_ROUTE))


@pytest.mark.parametrize(
    ("route", "text", "owned"),
    [
        (TOOLS, "tools/x", True),
        (TOOLS, "tools/a/b", True),
        (TOOLS, "tools", False),
        (TOOLS, "toolsx/y", False),
        (TOOLS, "x/tools/y", False),
        (REST, "anything", True),
        (REST, "tools/x", True),
    ],
)
def test_route_owns(route: Route, text: str, owned: bool) -> None:
    assert route.owns(name(text)) is owned


@pytest.mark.parametrize(
    ("route", "vanity", "upstream"),
    [
        (TOOLS, "tools/x", "acme/tools/x"),
        (TOOLS, "tools/a/b", "acme/tools/a/b"),
        (HUB_ROUTE, "hub/alpine", "library/alpine"),
        (HUB_ROUTE, "hub/bitnami/redis", "bitnami/redis"),
        (HUB_ROUTE, "hub/library/alpine", "library/alpine"),
        (REST, "x", "acme/x"),
    ],
)
def test_route_maps_both_ways(route: Route, vanity: str, upstream: str) -> None:
    assert route.to_upstream(name(vanity)) == name(upstream)
    shown = route.to_vanity(name(upstream))
    assert shown is not None
    assert route.to_upstream(shown) == name(upstream)


@pytest.mark.parametrize(
    ("route", "upstream", "vanity"),
    [
        (TOOLS, "acme/tools/x", "tools/x"),
        (TOOLS, "acme/x", None),
        (TOOLS, "acme/toolsx/y", None),
        (HUB_ROUTE, "library/alpine", "hub/alpine"),
        (HUB_ROUTE, "library/a/b", "hub/library/a/b"),
        (HUB_ROUTE, "bitnami/redis", "hub/bitnami/redis"),
        (HUB_ROUTE, "Bad", None),
        (REST, "acme/x", "x"),
        (REST, "other/x", None),
    ],
)
def test_route_to_vanity(route: Route, upstream: str, vanity: str | None) -> None:
    assert vanity_name_of(upstream, route) == (name(vanity) if vanity else None)


def test_route_endpoint_upstream_path() -> None:
    endpoint = parse_endpoint("/v2/tools/x/manifests/1")
    assert endpoint.upstream_path(TABLE.for_name(endpoint.name)) == ("/v2/acme/tools/x/manifests/1")
    endpoint = parse_endpoint("/v2/hub/alpine/tags/list")
    assert endpoint.upstream_path(TABLE.for_name(endpoint.name)) == "/v2/library/alpine/tags/list"


def test_route_table_orders_longest_prefix_first() -> None:
    assert [route.vanity_prefix for route in TABLE.routes] == ["tools/", "hub/", ""]
    assert TABLE.default is REST
    assert TABLE.has_several is True
    single = RouteTable((REST,))
    assert single.default is REST
    assert single.has_several is False


def test_route_table_default_without_catch_all_is_the_shortest_prefix() -> None:
    # In either configured order: the shortest prefix, not the first or last configured.
    assert RouteTable((TOOLS, HUB_ROUTE)).default is HUB_ROUTE
    assert RouteTable((HUB_ROUTE, TOOLS)).default is HUB_ROUTE


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("tools/x", "tools/"),
        ("tools/a/b", "tools/"),
        ("hub/alpine", "hub/"),
        ("tools", ""),
        ("toolsx/y", ""),
        ("x", ""),
    ],
)
def test_route_table_for_name(text: str, prefix: str) -> None:
    assert TABLE.for_name(name(text)).vanity_prefix == prefix


def test_route_table_for_unknown_name() -> None:
    table = RouteTable((TOOLS, HUB_ROUTE))
    with refused() as refusal:
        table.for_name(name("other/x"))
    assert refusal.status == 404
    assert refusal.code == "NAME_UNKNOWN"
    assert refusal.message == (
        "repository name 'other/x' is not served here: names start with 'tools/', 'hub/'"
    )
    assert refusal.detail == {"name": "other/x"}


def test_route_table_by_prefix() -> None:
    assert TABLE.by_prefix("tools/") is TOOLS
    assert TABLE.by_prefix("") is REST
    assert TABLE.by_prefix("tools") is None


def test_route_describe() -> None:
    assert TOOLS.describe() == "tools/NAME -> https://ghcr.io/acme/tools/NAME"
    assert route_to("", HUB, Namespace("")).describe() == (
        "NAME -> https://registry-1.docker.io/NAME"
    )


def test_credentials_repr_hides_secrets() -> None:
    shown = repr(RealmCredentials("user", "hunter2")) + repr(StaticToken("tok3n"))
    assert "hunter2" not in shown
    assert "tok3n" not in shown
    assert "user" in shown
    route = route_to("", GHCR, Namespace(""), RealmCredentials("u", "hunter2"))
    assert "hunter2" not in repr(route)
    # No tuple or dict of them holds the secret for a careless print either.
    assert not isinstance(RealmCredentials("u", "hunter2").login, tuple)


def test_upstream_is_docker_hub() -> None:
    assert HUB.is_docker_hub is True
    assert GHCR.is_docker_hub is False


def test_route_to_vanity_respects_the_length_limit() -> None:
    # An upstream name that would be over 255 characters under the vanity prefix has no vanity
    # name: it is never shown (in a challenge's scope, say) as a name the client cannot use.
    route = route_to("tools/", GHCR, Namespace(""))
    vanity = route.to_vanity(name("a" * 255))
    assert vanity is None or RepositoryName.parse(vanity.value) == vanity
