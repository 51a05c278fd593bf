"""Which answers an edge cache may keep, for routes where crev authenticates itself."""

from __future__ import annotations

import pytest

from crev.endpoints import parse_endpoint
from crev.messages import Headers
from crev.rewrite.edge_cache import IMMUTABLE, NOT_SHARED, set_edge_caching

DIGEST = "sha256:" + "c" * 64


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("GET", f"/v2/tool/manifests/{DIGEST}", 200, IMMUTABLE),
        ("HEAD", f"/v2/tool/blobs/{DIGEST}", 200, IMMUTABLE),
        ("GET", f"/v2/tool/blobs/{DIGEST}", 307, NOT_SHARED),
        ("GET", f"/v2/tool/manifests/{DIGEST}", 404, NOT_SHARED),
        ("GET", f"/v2/tool/manifests/{DIGEST}", 401, NOT_SHARED),
        ("GET", "/v2/tool/manifests/latest", 200, NOT_SHARED),
        ("GET", "/v2/tool/tags/list", 200, NOT_SHARED),
        ("GET", f"/v2/tool/referrers/{DIGEST}", 200, NOT_SHARED),
        ("DELETE", f"/v2/tool/manifests/{DIGEST}", 200, NOT_SHARED),
    ],
)
def test_only_a_200_for_content_by_digest_is_immutable(
    method: str, path: str, status: int, expected: str
) -> None:
    headers = Headers(
        [("Cache-Control", "public, s-maxage=99"), ("CDN-Cache-Control", "max-age=9")]
    )
    set_edge_caching(headers, parse_endpoint(path), method, status)
    assert headers.get_all("cache-control") == [expected]
    assert "cdn-cache-control" not in headers


def test_an_answer_kept_by_tag_varies_by_accept_and_by_what_the_upstream_varies_it_by() -> None:
    endpoint = parse_endpoint("/v2/tool/manifests/latest")
    headers = Headers([("Vary", "Accept-Encoding")])
    set_edge_caching(headers, endpoint, "GET", 200, tag_seconds=60)
    assert headers.get_all("cache-control") == ["public, max-age=0, s-maxage=60"]
    # An edge that forgot the upstream's own Vary could give one client another's coding.
    assert headers.get_all("vary") == ["Accept-Encoding", "Accept"]
    already = Headers([("Vary", "accept")])
    set_edge_caching(already, endpoint, "GET", 200, tag_seconds=60)
    assert already.get_all("vary") == ["accept"]
    bare = Headers()
    set_edge_caching(bare, endpoint, "GET", 200, tag_seconds=60)
    assert bare.get_all("vary") == ["Accept"]
