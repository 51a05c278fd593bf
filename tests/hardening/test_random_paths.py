"""Random request paths against the real local server: every answer is either forwarded under the
prefix (and only there) or a registry JSON error, never a 500 and never a body of another kind."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import MANIFEST, UPSTREAM_MARK, RawUpstream, healthy
from tests.support.wire import exchange, is_registry_error, parse, port_of, request_bytes

HEX = "a" * 64
COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
TAG = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
# What crev may ask upstream: the base, or an endpoint whose name lies under `acme/`.
FORWARDED = re.compile(
    rf"/v2/|/v2/acme/{COMPONENT}(?:/{COMPONENT})*"
    rf"/(?:manifests/(?:{TAG}|{DIGEST})|blobs/{DIGEST}|referrers/{DIGEST}|tags/list)"
)

TRICKY = [
    "tool",
    "acme",
    "a.b",
    "a__b",
    "x--y",
    "manifests",
    "blobs",
    "tags",
    "list",
    "referrers",
    "uploads",
    "_catalog",
    "",
    ".",
    "..",
    "%2e%2e",
    "%2E",
    "%2F",
    "%2f",
    "%5C",
    "\\",
    "%00",
    "%0d%0a",
    "%20",
    "%",
    "%25",
    "%252F",
    f"sha256:{HEX}",
    f"sha256%3A{HEX}",
    f"sha256%3a{HEX}%2F..",
    "sha512:" + "b" * 128,
    "latest",
    "1",
    "Tool",
    "-x",
    "x-",
    "~",
    "@",
    ":",
    ";",
    "*",
    "?",
    "#",
    "?n=1&last=a",
    "\u0430cme",
    "\uff0e\uff0e",
    "a\u2215b",
    "%E2%88%95",
    "t\u03bfol",
    "\u00e0",
    "a" * 130,
]

# Anything but CR and LF, which would end the request line (tested on their own elsewhere).
LOOSE_TEXT = st.text(
    alphabet=st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=10
)
# Mostly-valid components, so that a fair share of paths is forwarded.
NAMELIKE = st.from_regex(r"[a-z0-9]{1,6}(?:(?:\.|_|__|-+)[a-z0-9A-Z]{1,4})?", fullmatch=True)
SEGMENT = st.one_of(st.sampled_from(TRICKY), NAMELIKE, LOOSE_TEXT)
PATHS = st.one_of(
    st.builds(lambda parts: "/v2/" + "/".join(parts), st.lists(SEGMENT, max_size=6)),
    st.builds(
        lambda name, kind, ref: f"/v2/{name}/{kind}/{ref}",
        st.lists(SEGMENT, min_size=1, max_size=3).map("/".join),
        st.sampled_from(["manifests", "blobs", "tags", "referrers"]),
        SEGMENT,
    ),
    st.builds(lambda rest: "/" + rest, LOOSE_TEXT),
    st.builds(lambda rest: "//v2/" + rest, LOOSE_TEXT),
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=PATHS, method=st.sampled_from(["GET", "HEAD"]))
def test_every_path_is_forwarded_under_the_prefix_or_refused_as_json(
    crev: CrevServer, upstream: RawUpstream, path: str, method: str
) -> None:
    upstream.reset(healthy)
    raw = exchange(port_of(crev), request_bytes(path, method=method), timeout=10)
    response = parse(raw)
    assert response.status != 500, (path, response.body[:300])
    forwarded = list(upstream.requests)
    if forwarded:
        (request,) = forwarded
        event("forwarded")
        assert FORWARDED.fullmatch(request.path), (path, request.target)
        assert response.header(UPSTREAM_MARK[0]) == UPSTREAM_MARK[1], (path, raw[:300])
        return
    if response.status == 200:
        # The base, answered as the upstream answered an earlier ping (crev/upstream/ping.py):
        # its status and body, without asking it again.
        event("ping answered from what crev learned")
        assert urlsplit(path).path in ("/v2/", "/v2"), (path, raw[:300])
        assert response.body == (MANIFEST if method == "GET" else b""), (path, raw[:300])
        assert response.header("content-length") == str(len(MANIFEST)), (path, raw[:300])
        return
    assert 400 <= response.status < 500, (path, raw[:300])
    event(f"refused {response.status}")
    content_type = (response.header("content-type") or "").split(";")[0]
    assert content_type == "application/json", (path, raw[:300])
    if method == "GET":
        assert is_registry_error(content_type, response.body), (path, raw[:300])
