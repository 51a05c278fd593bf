"""crev/fallback.py: when a primary's answer lets the fallback be asked, and the tag list both
make together, ordered and paginated as the registry API does."""

from __future__ import annotations

import json

import pytest

from crev.endpoints import Endpoint, Kind
from crev.errors import RegistryError
from crev.fallback import (
    TagListQuery,
    TagPage,
    error_codes,
    fallback_for,
    may_ask_fallback,
    next_page_link,
    tag_page,
    unknown_here,
)
from crev.names import Digest, Namespace, RepositoryName, Tag
from crev.upstream import Upstream
from crev.upstream.auth import AnonymousToken
from crev.urls import Origin
from tests.support.routes import route_to

TOOL = RepositoryName("tool")
DIGEST = Digest("sha256:" + "c" * 64)
PRIMARY = route_to("", Origin("https", "ghcr.io"), Namespace("acme"), AnonymousToken(), public=True)
WITH_FALLBACK = route_to(
    "",
    Origin("https", "ghcr.io"),
    Namespace("acme"),
    AnonymousToken(),
    public=True,
    fallback=Upstream(Origin("https", "registry-1.docker.io"), Namespace("acme"), AnonymousToken()),
)


def error(*codes: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": "m"} for code in codes]}).encode()


@pytest.mark.parametrize("code", ["NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"])
def test_a_404_that_says_unknown_lets_the_fallback_be_asked(code: str) -> None:
    assert unknown_here(404, "GET", error(code))
    assert unknown_here(404, "GET", error("DENIED", code))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, error("UNAUTHORIZED")),
        (403, error("DENIED")),
        (429, error("TOOMANYREQUESTS")),
        (500, error("UNKNOWN")),
        (502, b""),
        (307, b""),
        (200, b"{}"),
        # A 404 of the registry's for another reason, or one that is not the registry's.
        (404, error("NAME_INVALID")),
        (404, b"404 page not found"),
        (404, b'{"errors":"MANIFEST_UNKNOWN"}'),
        (404, b'["MANIFEST_UNKNOWN"]'),
        # The code is in the message, not the code.
        (404, b'{"errors":[{"code":"X","message":"MANIFEST_UNKNOWN"}]}'),
    ],
)
def test_every_other_answer_stands(status: int, body: bytes) -> None:
    assert not unknown_here(status, "GET", body)


def test_a_head_404_carries_no_body_and_means_unknown() -> None:
    assert unknown_here(404, "HEAD", None)
    assert not unknown_here(401, "HEAD", None)
    assert not unknown_here(404, "GET", None)


def test_error_codes() -> None:
    assert error_codes(error("A", "B")) == {"A", "B"}
    assert error_codes(b'{"errors":[{"code":1},"x"]}') == frozenset()
    assert error_codes(b"\xff") == frozenset()


@pytest.mark.parametrize(
    ("endpoint", "method", "for_clients", "asks"),
    [
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "GET", True, True),
        (Endpoint(Kind.MANIFEST, TOOL, DIGEST), "HEAD", True, True),
        (Endpoint(Kind.BLOB, TOOL, DIGEST), "GET", True, True),
        (Endpoint(Kind.TAGS, TOOL), "GET", True, True),
        (Endpoint(Kind.REFERRERS, TOOL, DIGEST), "GET", True, True),
        # A client's own login is for the primary's realm alone.
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "GET", False, False),
        # Writes go to the primary only.
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "PUT", True, False),
        (Endpoint(Kind.BLOB, TOOL, DIGEST), "DELETE", True, False),
        (Endpoint(Kind.UPLOAD_START, TOOL), "POST", True, False),
        (Endpoint(Kind.BASE), "GET", True, False),
    ],
)
def test_which_requests_may_reach_the_fallback(
    endpoint: Endpoint, method: str, for_clients: bool, asks: bool
) -> None:
    assert may_ask_fallback(WITH_FALLBACK, endpoint, method, for_clients) is asks
    assert not may_ask_fallback(PRIMARY, endpoint, method, for_clients)


def test_the_union_is_each_tag_once_in_lexical_order() -> None:
    tags = ["latest", "1.10", "1.9", "a", "B", "1.9", "latest"]
    assert tag_page(tags, TagListQuery()) == TagPage(["1.10", "1.9", "B", "a", "latest"])


@pytest.mark.parametrize(
    ("query", "page"),
    [
        (TagListQuery(n=2), TagPage(["a", "b"], "b")),
        (TagListQuery(n=2, last="b"), TagPage(["c", "d"], "d")),
        (TagListQuery(n=2, last="d"), TagPage(["e"])),
        (TagListQuery(n=5), TagPage(["a", "b", "c", "d", "e"])),
        (TagListQuery(n=9, last="bb"), TagPage(["c", "d", "e"])),
        (TagListQuery(last="e"), TagPage([])),
        (TagListQuery(last="c"), TagPage(["d", "e"])),
        (TagListQuery(n=0), TagPage([])),
    ],
)
def test_pages_follow_n_and_last(query: TagListQuery, page: TagPage) -> None:
    assert tag_page(["e", "d", "c", "b", "a"], query) == page


def test_pages_walked_by_their_links_give_the_whole_list() -> None:
    tags = [f"t{i}" for i in range(23)]
    seen: list[str] = []
    query = TagListQuery(n=5)
    while True:
        page = tag_page(tags, query)
        seen += page.tags
        if page.following is None:
            break
        query = TagListQuery(5, page.following)
    assert seen == sorted(tags)


@pytest.mark.parametrize(
    ("query", "parsed"),
    [
        ("", TagListQuery()),
        ("n=10", TagListQuery(10)),
        ("n=10&last=v1.2", TagListQuery(10, "v1.2")),
        ("last=", TagListQuery()),
    ],
)
def test_the_clients_query(query: str, parsed: TagListQuery) -> None:
    assert TagListQuery.parse(query) == parsed


@pytest.mark.parametrize("n", ["ten", "-1", "1e3", "9" * 12])
def test_a_page_size_that_is_no_number_is_refused(n: str) -> None:
    with pytest.raises(RegistryError) as refused:
        TagListQuery.parse(f"n={n}")
    assert (refused.value.status, refused.value.code) == (400, "PAGINATION_NUMBER_INVALID")


def test_the_next_page_link() -> None:
    assert next_page_link("/v2/team/tool/tags/list", 2, "v1+x") == (
        '</v2/team/tool/tags/list?n=2&last=v1%2Bx>; rel="next"'
    )


def test_a_name_the_fallbacks_namespace_makes_too_long_is_the_primarys_alone() -> None:
    # acme/ + 248 characters is a name; a-much-longer-old-namespace/ + 248 is not.
    long_name = RepositoryName("x" * 248)
    route = PRIMARY._replace(
        upstreams=(
            PRIMARY.upstream,
            Upstream(
                Origin("https", "registry-1.docker.io"),
                Namespace("a-much-longer-old-namespace"),
                AnonymousToken(),
            ),
        )
    )
    assert fallback_for(route, TOOL) == route.fallback
    assert fallback_for(route, long_name) is None
    assert fallback_for(PRIMARY, TOOL) is None
    endpoint = Endpoint(Kind.MANIFEST, long_name, Tag("1"))
    assert not may_ask_fallback(route, endpoint, "GET", True)
