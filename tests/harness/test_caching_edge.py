"""The caching edge stand-in keeps exactly what Vercel's documented rules let it keep."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpserver import HTTPServer

from rig.caching_edge import edge_lifetime, run_caching_edge


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ([("Cache-Control", "public, max-age=600")], None),
        ([("Cache-Control", "public, s-maxage=600")], 600.0),
        ([("Cache-Control", "private, s-maxage=600")], None),
        ([("Cache-Control", "no-store")], None),
        ([("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "s-maxage=600")], 60.0),
        ([("Vercel-CDN-Cache-Control", "s-maxage=5"), ("CDN-Cache-Control", "max-age=60")], 5.0),
        ([("CDN-Cache-Control", "no-cache"), ("Cache-Control", "s-maxage=600")], None),
        ([], None),
    ],
)
def test_the_lifetime_follows_vercels_order_of_headers(headers, lifetime) -> None:
    assert edge_lifetime(headers) == lifetime


def test_only_cacheable_requests_and_answers_are_served_from_the_cache(
    httpserver: HTTPServer,
) -> None:
    cached = {"Cache-Control": "s-maxage=60"}
    httpserver.expect_request("/kept").respond_with_data("kept", headers=cached)
    httpserver.expect_request("/browser-only").respond_with_data(
        "b", headers={"Cache-Control": "max-age=60"}
    )
    httpserver.expect_request("/error").respond_with_data("e", status=500, headers=cached)
    with run_caching_edge(httpserver.url_for("/")) as edge, httpx.Client() as client:
        for path in ["/kept", "/kept", "/browser-only", "/browser-only", "/error", "/error"]:
            client.get(edge.url + path)
        client.get(edge.url + "/kept", headers={"Authorization": "Bearer x"})
        head = client.head(edge.url + "/kept")
        assert head.headers["content-length"] == "4"
        hits = [(r.method, r.target) for r in edge.requests if r.cached]
        assert hits == [("GET", "/kept"), ("HEAD", "/kept")]
        assert [r.path for r, _ in httpserver.log].count("/kept") == 2
