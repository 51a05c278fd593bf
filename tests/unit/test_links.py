"""`Location` and `Link` rewriting (crev/rewrite/links.py)."""

from __future__ import annotations

import pytest

from crev.errors import MalformedHeaderError
from crev.names import Namespace
from crev.rewrite.links import rewrite_link, rewrite_location
from crev.urls import DOCKER_HUB, Origin
from tests.support.routes import route_to

GHCR = Origin("https", "ghcr.io")
LOCAL = Origin("http", "127.0.0.1:5000")
ACME = Namespace("acme")
TEAM = Namespace("org/team")
NONE = Namespace("")
DIGEST = "sha256:" + "ab" * 32
BLOB_URL = GHCR.url(f"/v2/acme/tool/blobs/{DIGEST}")
UPLOADS_URL = GHCR.url("/v2/acme/tool/blobs/uploads/")
TAGS_URL = GHCR.url("/v2/acme/tool/tags/list?n=100")

# --- rewrite_location: other hosts ------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:abc?se=2024-01-01T00%3A00"
        "%3A00Z&sig=AbC%2Bd%2F%3D&sp=r&spr=https&sr=b&sv=2019-12-12",
        "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/ab/"
        "data?verify=1700000000-abc%3D",
        "https://s3.amazonaws.com/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=f00",
        "https://ghcr.io.evil.example/v2/acme/tool/blobs/x",
        "https://evilghcr.io/v2/acme/tool/blobs/x",
        "https://ghcr.io:8443/v2/acme/tool/blobs/x",
        "https://user@ghcr.io/v2/acme/tool/blobs/x",
        "//cdn.example/v2/acme/x?a=b%20c",
        "https://cdn.example/path with spaces?q=a b#frag",
        "https://cdn.example/v2/acme/tool/blobs/x?b=2&a=1&a=1",
        "https://cdn.example",
        "HTTPS://CDN.EXAMPLE/X?Y=Z",
    ],
)
def test_other_host_is_untouched(location: str) -> None:
    assert rewrite_location(location, BLOB_URL, ACME) == location
    assert rewrite_location(location, BLOB_URL, NONE) == location


# --- rewrite_location: the upstream itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        (
            "/v2/acme/tool/blobs/uploads/uuid?_state=x",
            "/v2/tool/blobs/uploads/uuid?_state=x",
        ),
        (f"/v2/acme/tool/blobs/{DIGEST}", f"/v2/tool/blobs/{DIGEST}"),
        (f"https://ghcr.io/v2/acme/tool/blobs/{DIGEST}", f"/v2/tool/blobs/{DIGEST}"),
        (f"https://ghcr.io:443/v2/acme/tool/blobs/{DIGEST}", f"/v2/tool/blobs/{DIGEST}"),
        (f"https://GHCR.IO/v2/acme/tool/blobs/{DIGEST}?a=1", f"/v2/tool/blobs/{DIGEST}?a=1"),
        (f"//ghcr.io/v2/acme/team/tool/blobs/{DIGEST}", f"/v2/team/tool/blobs/{DIGEST}"),
        ("/v2/acme/tool/tags/list?n=100&last=x", "/v2/tool/tags/list?n=100&last=x"),
        ("/v2/acme/", "https://ghcr.io/v2/acme/"),
        # Outside the prefix on the upstream's own host: the client must go there directly.
        (
            "/artifacts-downloads/namespaces/p/repositories/r/downloads/ABC?sig=x%2By",
            "https://ghcr.io/artifacts-downloads/namespaces/p/repositories/r/downloads/ABC"
            "?sig=x%2By",
        ),
        (
            "https://ghcr.io:443/artifacts-downloads/x",
            "https://ghcr.io:443/artifacts-downloads/x",
        ),
        ("/v2/other/tool/blobs/x", "https://ghcr.io/v2/other/tool/blobs/x"),
        ("/v2/acmefoo/tool/blobs/x", "https://ghcr.io/v2/acmefoo/tool/blobs/x"),
        ("/v2/acme", "https://ghcr.io/v2/acme"),
        ("/v2/", "https://ghcr.io/v2/"),
        ("/v2", "https://ghcr.io/v2"),
        ("/", "https://ghcr.io/"),
        # Dot segments are resolved before the prefix is checked.
        ("/v2/acme/../other/x", "https://ghcr.io/v2/other/x"),
        ("/v2/acme/tool/../other", "https://ghcr.io/v2/acme/other"),
        ("/v2/acme/a/b/../../tool/blobs/x", "/v2/tool/blobs/x"),
        # Escapes are never decoded: an encoded dot or slash is not a name.
        ("/v2/acme/%2e%2e/other/x", "https://ghcr.io/v2/acme/%2e%2e/other/x"),
        ("/v2/acme/%2e%2e/blobs/x", "https://ghcr.io/v2/acme/%2e%2e/blobs/x"),
        ("/v2/acme/a%2Fb/blobs/x", "https://ghcr.io/v2/acme/a%2Fb/blobs/x"),
        # The name ends at the rightmost API segment that has something after it.
        ("/v2/acme/x/blobs/y/manifests/1", "/v2/x/blobs/y/manifests/1"),
        ("/v2/acme/x/manifests/blobs", "/v2/x/manifests/blobs"),
        ("/v2/acme/x/manifests/tags/list", "/v2/x/manifests/tags/list"),
        ("/v2/acme/manifests/manifests/1", "/v2/manifests/manifests/1"),
        ("/v2/acme/x/blobs/uploads/u?_state=1", "/v2/x/blobs/uploads/u?_state=1"),
        ("/v2/acme/tool/blobs/", "/v2/tool/blobs/"),
        ("/v2/acme/tool/blobs", "https://ghcr.io/v2/acme/tool/blobs"),
        ("/v2/acme/tags/list", "https://ghcr.io/v2/acme/tags/list"),
        ("/v2/acme/x//blobs/u", "https://ghcr.io/v2/acme/x//blobs/u"),
        ("/v2/acme/X/blobs/u", "https://ghcr.io/v2/acme/X/blobs/u"),
        ("/v2/acme%2Fx/y", "https://ghcr.io/v2/acme%2Fx/y"),
    ],
)
def test_same_host(location: str, expected: str) -> None:
    assert rewrite_location(location, BLOB_URL, ACME) == expected


@pytest.mark.parametrize(
    ("location", "request_url", "expected"),
    [
        ("uuid?_state=x", UPLOADS_URL, "/v2/tool/blobs/uploads/uuid?_state=x"),
        ("./uuid", UPLOADS_URL, "/v2/tool/blobs/uploads/uuid"),
        ("../other", UPLOADS_URL, "/v2/tool/blobs/other"),
        ("?n=10&last=b", TAGS_URL, "/v2/tool/tags/list?n=10&last=b"),
        ("", BLOB_URL, f"/v2/tool/blobs/{DIGEST}"),
        ("list?last=x", TAGS_URL, "/v2/tool/tags/list?last=x"),
    ],
)
def test_relative_without_leading_slash(location: str, request_url: str, expected: str) -> None:
    assert rewrite_location(location, request_url, ACME) == expected


@pytest.mark.parametrize(
    ("location", "namespace", "expected"),
    [
        ("/v2/tool/blobs/uploads/u?_state=s", NONE, "/v2/tool/blobs/uploads/u?_state=s"),
        ("https://ghcr.io/v2/a/b/tags/list", NONE, "/v2/a/b/tags/list"),
        ("/artifacts-downloads/x", NONE, "https://ghcr.io/artifacts-downloads/x"),
        ("/v2/org/team/tool/blobs/x", TEAM, "/v2/tool/blobs/x"),
        ("/v2/org/tool/blobs/x", TEAM, "https://ghcr.io/v2/org/tool/blobs/x"),
    ],
)
def test_prefixes(location: str, namespace: Namespace, expected: str) -> None:
    assert rewrite_location(location, BLOB_URL, namespace) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.1:5000/v2/acme/tool/blobs/x", "/v2/tool/blobs/x"),
        ("/v2/acme/tool/blobs/x", "/v2/tool/blobs/x"),
        ("http://127.0.0.1/v2/acme/tool/blobs/x", "http://127.0.0.1/v2/acme/tool/blobs/x"),
        (
            "http://127.0.0.1:5001/v2/acme/tool/blobs/x",
            "http://127.0.0.1:5001/v2/acme/tool/blobs/x",
        ),
        ("/other", "http://127.0.0.1:5000/other"),
    ],
)
def test_upstream_with_port(location: str, expected: str) -> None:
    request_url = LOCAL.url("/v2/acme/tool/blobs/" + DIGEST)
    assert rewrite_location(location, request_url, ACME) == expected


HUB = Origin("https", DOCKER_HUB)
OFFICIAL = Namespace("", official_images=True)
HUB_TAGS_URL = HUB.url("/v2/library/alpine/tags/list")


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/library/alpine/blobs/uploads/u", "/v2/alpine/blobs/uploads/u"),
        ("/v2/library/alpine/manifests/blobs", "/v2/alpine/manifests/blobs"),
        ("/v2/library/alpine/tags/list?last=3", "/v2/alpine/tags/list?last=3"),
        ("/v2/bitnami/redis/tags/list?last=a", "/v2/bitnami/redis/tags/list?last=a"),
        ("/v2/library/a/b/tags/list", "/v2/library/a/b/tags/list"),
    ],
)
def test_official_images(location: str, expected: str) -> None:
    assert rewrite_location(location, HUB_TAGS_URL, OFFICIAL) == expected


TOOLS = route_to("tools/", GHCR, Namespace("acme/tools"))


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/acme/tools/x/blobs/uploads/u", "/v2/tools/x/blobs/uploads/u"),
        ("https://ghcr.io/v2/acme/tools/a/b/tags/list?n=1", "/v2/tools/a/b/tags/list?n=1"),
        ("/v2/acme/other/blobs/u", "https://ghcr.io/v2/acme/other/blobs/u"),
        ("https://cdn.example/x?sig=1", "https://cdn.example/x?sig=1"),
    ],
)
def test_route_with_vanity_prefix(location: str, expected: str) -> None:
    assert rewrite_location(location, BLOB_URL, TOOLS) == expected


def test_upstream_configured_with_default_port_matches_bare_host() -> None:
    upstream = Origin("https", "ghcr.io:443")
    asked = upstream.url(BLOB_URL.target)
    assert rewrite_location("https://ghcr.io/v2/acme/t/blobs/x", asked, ACME) == ("/v2/t/blobs/x")


@pytest.mark.parametrize("location", ["/v2/acme/x\r\nSet-Cookie: a=b", "/x\n", "\x00", "a\x7f"])
def test_location_with_control_characters_is_refused(location: str) -> None:
    with pytest.raises(MalformedHeaderError):
        rewrite_location(location, BLOB_URL, ACME)


def test_location_with_bad_ipv6_raises_value_error() -> None:
    # A ValueError (MalformedHeaderError is one) is what an unparseable URL may raise.
    with pytest.raises(ValueError):
        rewrite_location("https://[::1/v2/x", BLOB_URL, ACME)


# --- rewrite_link -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '</v2/acme/tool/tags/list?n=100&last=x>; rel="next"',
            '</v2/tool/tags/list?n=100&last=x>; rel="next"',
        ),
        (
            '<https://ghcr.io/v2/acme/tool/tags/list?n=100&last=x>; rel="next"',
            '</v2/tool/tags/list?n=100&last=x>; rel="next"',
        ),
        ("</v2/acme/tool/tags/list?last=x>;rel=next", "</v2/tool/tags/list?last=x>;rel=next"),
        (
            '</v2/acme/tool/tags/list?last=x> ; rel = "next" ; type="a"',
            '</v2/tool/tags/list?last=x> ; rel = "next" ; type="a"',
        ),
        # Several links, each rewritten; quoted commas and semicolons kept verbatim.
        (
            '</v2/acme/a/tags/list?last=1>; rel="next", '
            '<https://cdn.example/x?sig=1,2>; rel="alternate"; title="a, b; c"',
            '</v2/a/tags/list?last=1>; rel="next", '
            '<https://cdn.example/x?sig=1,2>; rel="alternate"; title="a, b; c"',
        ),
        (
            '</v2/acme/a/tags/list?last=1>;rel="next",</v2/acme/a/tags/list?last=0>;rel="prev"',
            '</v2/a/tags/list?last=1>;rel="next", </v2/a/tags/list?last=0>;rel="prev"',
        ),
        ('<list?last=x>; rel="next"', '</v2/tool/tags/list?last=x>; rel="next"'),
        ("</x>; rel", "<https://ghcr.io/x>; rel"),
        ("</v2/acme/t/tags/list>", "</v2/t/tags/list>"),
        ('<a>; title="say \\"hi\\""', '</v2/tool/tags/a>; title="say \\"hi\\""'),
        # A trailing empty list element is ignored.
        ('</v2/acme/a/tags/list>; rel="next",', '</v2/a/tags/list>; rel="next"'),
    ],
)
def test_rewrite_link(header: str, expected: str) -> None:
    assert rewrite_link(header, TAGS_URL, ACME) == expected


def test_rewrite_link_relative_target_is_joined_with_the_request_url() -> None:
    # `<a>` against .../tags/list resolves to .../tags/a, which is under the prefix.
    assert rewrite_link('<a>; rel="next"', TAGS_URL, ACME) == '</v2/tool/tags/a>; rel="next"'


def test_rewrite_link_empty_prefix() -> None:
    assert rewrite_link('</v2/tool/tags/list?last=x>; rel="next"', TAGS_URL, NONE) == (
        '</v2/tool/tags/list?last=x>; rel="next"'
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "/v2/acme/tool/tags/list; rel=next",
        '</v2/acme/tool/tags/list; rel="next"',
        '</a> rel="next"',
        '</a>; rel="next" </b>',
        '</a>; rel="next"; </b>',
        "</a>;",
        "</a>; =x",
        '</a>; rel="next',
        "</a>; rel=",
        "</a\n>",
    ],
)
def test_rewrite_link_refuses_malformed(header: str) -> None:
    with pytest.raises(MalformedHeaderError):
        rewrite_link(header, TAGS_URL, ACME)


@pytest.mark.parametrize(
    "header",
    [
        ', </v2/acme/a/tags/list>; rel="next"',
        '</v2/acme/a/tags/list>; rel="next",, </v2/acme/b/tags/list>',
        ' , </v2/acme/a/tags/list>; rel="next" , ,',
    ],
)
def test_rewrite_link_ignores_empty_list_elements(header: str) -> None:
    # Link is a `#link-value` list, whose empty elements a recipient MUST ignore (RFC 9110
    # section 5.6.1): leading, repeated and trailing commas change nothing, and the answer is
    # rewritten rather than refused as a malformed upstream header.
    result = rewrite_link(header, TAGS_URL, ACME)
    assert result.startswith('</v2/a/tags/list>; rel="next"')
    assert "acme" not in result
