"""Property tests (hypothesis) for the parsers and mappings that face untrusted input."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crev.endpoints import Kind, parse_endpoint
from crev.errors import (
    CrevError,
    InvalidNameError,
    InvalidScopeError,
    MalformedHeaderError,
    registry_error,
)
from crev.messages import Headers
from crev.names import Namespace, RepositoryName, vanity_name_of
from crev.rewrite.challenge import (
    Challenge,
    format_challenges,
    parse_challenges,
    rewrite_challenges,
)
from crev.rewrite.header_filters import client_response_headers
from crev.rewrite.links import parse_links, rewrite_link, rewrite_location
from crev.scope import Scope, parse_scopes, scope_to_upstream, scope_to_vanity
from crev.urls import URL, Origin

ACME = Namespace("acme")
GHCR = Origin("https", "ghcr.io")
REQUEST_URL = GHCR.url("/v2/acme/tool/blobs/uploads/")
ENDPOINT = URL.parse("https://vanity.example/api/token")


def rewrite_challenge(header: str, token_endpoint: URL, mapping: Namespace) -> str:
    return rewrite_challenges(parse_challenges(header), token_endpoint, mapping)


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies -------------------------------------------------------------------------------

# Valid names, built rather than drawn from a regex (much faster): components of
# [a-z0-9]+ joined by the grammar's separators, then components joined by "/".
_alnum = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6)
_component = st.tuples(
    _alnum, st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "---"]), _alnum), max_size=2)
).map(lambda parts: parts[0] + "".join(sep + word for sep, word in parts[1]))
valid_names = st.lists(_component, min_size=1, max_size=4).map("/".join)
# Text that is often almost a name: separators, case, escapes and look-alikes.
name_like = st.text(alphabet="ab0_-./%2FAe\\\u0430\uff41: ", max_size=40)
any_name_text = st.one_of(valid_names, name_like, st.text(max_size=60))

TCHAR = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(alphabet=TCHAR, min_size=1, max_size=12)
# Parameter values: anything a quoted-string may carry, commas, quotes, backslashes, spaces, tabs
# and non-ASCII included, but no control character (format refuses those).
param_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"),
    max_size=40,
)
challenges = st.builds(
    Challenge, tokens, st.lists(st.tuples(tokens, param_values), min_size=0, max_size=5)
)

PATH_WORDS = ["manifests", "blobs", "tags", "list", "uploads", "referrers", "_catalog", "..", "."]
path_segments = st.one_of(
    st.sampled_from(PATH_WORDS),
    st.text(alphabet="abcz09._-~=+:%2FAe@\\\u0430", max_size=12),
    st.sampled_from(["sha256:" + "a" * 64, "sha256%3A" + "b" * 64, "latest", "v1.0", ""]),
)
v2_paths = st.one_of(
    st.lists(path_segments, max_size=8).map(lambda parts: "/v2/" + "/".join(parts)),
    st.text(max_size=80),
    st.text(max_size=40).map(lambda rest: "/v2/" + rest),
)

ACTIONS = st.lists(st.sampled_from(["pull", "push", "delete", "*"]), min_size=1, max_size=3)
scope_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda name: not any(char.isspace() or ord(char) < 0x20 for char in name))
scopes = st.builds(
    Scope,
    st.sampled_from(["repository", "registry", "x1"]),
    scope_names,
    ACTIONS.map(tuple),
    st.one_of(st.none(), st.text(alphabet=string.ascii_letters + string.digits, min_size=1)),
)

OTHER_HOSTS = [
    "pkg-containers.githubusercontent.com",
    "ghcr.io.evil.example",
    "evilghcr.io",
    "ghcr.io:8443",
    "user@ghcr.io",
    "production.cloudflare.docker.com",
    "127.0.0.1",
    "[::1]:443",
]
url_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)


# --- names ------------------------------------------------------------------------------------


@FAST
@given(any_name_text)
@example("..")
@example("a/../b")
@example("%2e%2e")
@example("a" * 251)
def test_to_upstream_stays_under_the_prefix(text: str) -> None:
    try:
        upstream = ACME.to_upstream(RepositoryName.parse(text))
    except InvalidNameError:
        return
    assert upstream.value.startswith("acme/")
    assert ".." not in upstream.value.split("/")
    assert "//" not in upstream.value
    assert RepositoryName.parse(upstream.value) == upstream
    assert ACME.to_vanity(upstream) == RepositoryName(text)


@FAST
@given(valid_names)
def test_official_images_round_trip_upstream(text: str) -> None:
    namespace = Namespace("", official_images=True)
    upstream = namespace.to_upstream(RepositoryName(text)) if len(text) <= 247 else None
    if upstream is None:
        return
    vanity = namespace.to_vanity(upstream)
    assert vanity is not None
    assert namespace.to_upstream(vanity) == upstream


@FAST
@given(st.text(max_size=80))
def test_to_vanity_is_none_or_a_valid_name_under_the_prefix(text: str) -> None:
    vanity = vanity_name_of(text, ACME)
    if vanity is None:
        return
    assert text == "acme/" + vanity.value
    assert RepositoryName.parse(vanity.value) == vanity


# --- endpoints --------------------------------------------------------------------------------


@FAST
@given(v2_paths)
@example("/v2/x/blobs/uploads/..")
@example("/v2/x/manifests/manifests/1")
@example("/v2/..%2F/manifests/1")
def test_parse_endpoint_raises_only_registry_errors(path: str) -> None:
    try:
        endpoint = parse_endpoint(path)
    except CrevError as error:
        assert registry_error(error).status in (400, 404, 414)
        return
    try:
        upstream = endpoint.upstream_path(ACME)
    except InvalidNameError:
        return
    if endpoint.kind is Kind.BASE:
        assert upstream == "/v2/"
        return
    assert upstream.startswith("/v2/acme/")
    assert endpoint.name is not None
    assert upstream.startswith(f"/v2/acme/{endpoint.name.value}/")
    assert not any(char in upstream for char in "?#%\\ ")


@FAST
@given(v2_paths)
@example("/v2/x/blobs/uploads/..")
@example("/v2/x/blobs/uploads/.")
def test_upstream_path_has_no_dot_segments(path: str) -> None:
    # URL libraries resolve dot segments, so an upstream path with one would ask another
    # resource (test_endpoints.py::test_dot_segment_upload_ids_are_refused).
    try:
        upstream = parse_endpoint(path).upstream_path(ACME)
    except CrevError:
        return
    assert not {".", ".."} & set(upstream.split("/"))


# --- scopes -----------------------------------------------------------------------------------


@FAST
@given(scopes)
def test_scope_round_trips(scope: Scope) -> None:
    assert Scope.parse(str(scope)) == scope
    assert parse_scopes(f" {scope}  {scope} ") == [scope, scope]


@FAST
@given(st.text(max_size=60))
@example("repository:a:")
@example("repository(:a:pull")
@example("::")
def test_scope_parse_raises_only_scope_error(text: str) -> None:
    try:
        scope = Scope.parse(text)
    except InvalidScopeError:
        return
    assert Scope.parse(str(scope)) == scope


@FAST
@given(any_name_text, ACTIONS)
def test_scope_to_upstream_never_leaves_the_prefix(name: str, actions: list[str]) -> None:
    try:
        scope = Scope.parse(f"repository:{name}:{','.join(actions)}")
    except InvalidScopeError:
        return
    mapped = scope_to_upstream(scope, ACME)
    if mapped is None:
        return
    assert mapped.type == "repository"
    assert mapped.name == f"acme/{name}"
    assert RepositoryName.parse(mapped.name).value == mapped.name
    assert mapped.actions == scope.actions
    client = scope_to_vanity(mapped, ACME)
    assert client == scope


@FAST
@given(st.text(max_size=40), ACTIONS)
def test_scope_to_client_shows_only_valid_vanity_names(name: str, actions: list[str]) -> None:
    try:
        scope = Scope.parse(f"repository:{name}:{','.join(actions)}")
    except InvalidScopeError:
        return
    shown = scope_to_vanity(scope, ACME)
    if shown is None:
        return
    assert scope.name == "acme/" + shown.name
    assert RepositoryName.parse(shown.name).value == shown.name


# --- challenges -------------------------------------------------------------------------------


@FAST
@given(st.lists(challenges, min_size=1, max_size=4))
def test_challenges_round_trip(generated: list[Challenge]) -> None:
    assert parse_challenges(format_challenges(generated)) == generated


@FAST
@given(tokens, st.from_regex(r"\A[A-Za-z0-9._~+/-]+=*\Z"))
@example("Basic", "dXNlcjpwYXNz")
@example("Basic", "dXNlcjpwYXNzd29yZA==")
def test_token68_round_trips(scheme: str, token68: str) -> None:
    # Base64 '=' padding is part of a token68 (test_challenge.py::test_token68_with_base64_padding).
    challenge = Challenge(scheme, token68=token68)
    assert parse_challenges(challenge.format()) == [challenge]


@FAST
@given(st.text(max_size=80))
@example('Bearer realm="x')
@example("Bearer realm=")
@example(",,,")
@example('Bearer realm="\\')
def test_parse_challenges_raises_only_malformed_header_error(header: str) -> None:
    try:
        parsed = parse_challenges(header)
    except MalformedHeaderError:
        return
    assert parsed


@FAST
@given(st.lists(st.tuples(any_name_text, ACTIONS), min_size=1, max_size=4), param_values)
def test_rewritten_challenge_scopes_are_vanity_names_of_upstream_scopes(
    names: list[tuple[str, list[str]]], service: str
) -> None:
    upstream_scopes = " ".join(f"repository:{name}:{','.join(actions)}" for name, actions in names)
    try:
        header = Challenge(
            "Bearer",
            [
                ("realm", "https://auth.upstream/token"),
                ("service", service),
                ("scope", upstream_scopes),
            ],
        ).format()
    except MalformedHeaderError:
        return  # a control character: no upstream can send this header
    try:
        rewritten = parse_challenges(rewrite_challenge(header, ENDPOINT, ACME))
    except MalformedHeaderError:
        # Only an upstream scope list crev cannot parse back is a malformed header.
        return
    assert len(rewritten) == 1
    assert rewritten[0].get("realm") == str(ENDPOINT)
    assert rewritten[0].get("service") == service
    shown = rewritten[0].get("scope")
    if shown is None:
        return
    originals = set(upstream_scopes.split())
    for scope in parse_scopes(shown):
        upstream = scope_to_upstream(scope, ACME)
        assert upstream is not None
        assert str(upstream) in originals


@FAST
@given(st.text(max_size=80))
def test_rewrite_challenge_raises_only_malformed_header_error(header: str) -> None:
    try:
        rewritten = rewrite_challenge(header, ENDPOINT, ACME)
    except MalformedHeaderError:
        return
    # What crev emits is itself a well-formed header with the same challenges.
    original = parse_challenges(header)
    again = parse_challenges(rewritten)
    assert [challenge.scheme for challenge in again] == [c.scheme for c in original]
    for challenge in again:
        if challenge.is_bearer:
            assert challenge.get("realm") == str(ENDPOINT)


# --- links ------------------------------------------------------------------------------------


@FAST
@given(st.text(max_size=80))
@example("https://[::1/x")
@example("/v2/acme/x\r\n")
@example("//ghcr.io/v2/acme/a/blobs/b")
def test_rewrite_location_raises_only_value_errors(location: str) -> None:
    try:
        rewritten = rewrite_location(location, REQUEST_URL, ACME)
    except ValueError:  # MalformedHeaderError included
        return
    assert "\r" not in rewritten
    assert "\n" not in rewritten


@FAST
@given(
    st.sampled_from(["https", "http", "HTTPS"]),
    st.sampled_from(OTHER_HOSTS),
    url_text,
    url_text,
)
def test_rewrite_location_never_changes_another_host(
    scheme: str, host: str, path: str, query: str
) -> None:
    location = f"{scheme}://{host}/{path}?{query}"
    try:
        rewritten = rewrite_location(location, REQUEST_URL, ACME)
    except ValueError:
        return
    assert rewritten == location


@FAST
@given(
    valid_names,
    st.sampled_from(["blobs/uploads/u?_state=x", "tags/list?n=1&last=a", "manifests/v1"]),
)
def test_rewrite_location_maps_the_prefix_back(name: str, rest: str) -> None:
    location = f"https://ghcr.io/v2/acme/{name}/{rest}"
    assert rewrite_location(location, REQUEST_URL, ACME) == f"/v2/{name}/{rest}"


@FAST
@given(st.text(max_size=80))
@example("<")
@example("<x>;")
@example('<x>; a="')
@example('</v2/acme/a/tags/list?n=1>; rel="next", <https://cdn.example/x?s=1,2>; t="a, b"')
def test_rewrite_link_raises_only_value_errors(header: str) -> None:
    try:
        rewritten = rewrite_link(header, REQUEST_URL, ACME)
    except ValueError:  # MalformedHeaderError included
        return
    assert "\r" not in rewritten
    assert "\n" not in rewritten
    # The rewritten value is a well-formed Link value: read again and written back with no
    # target changed, it comes back unchanged.
    links = parse_links(rewritten)
    assert ", ".join(f"<{link.target}>{link.params}" for link in links) == rewritten


# --- forwarding -------------------------------------------------------------------------------

HEADER_NAMES = [
    "Connection",
    "Keep-Alive",
    "Transfer-Encoding",
    "Set-Cookie",
    "Upgrade",
    "Link",
    "Location",
    "X-Custom",
    "Content-Type",
    "Docker-Content-Digest",
]


@FAST
@given(
    st.lists(
        st.tuples(
            st.sampled_from(HEADER_NAMES).flatmap(
                lambda name: st.sampled_from([name, name.lower(), name.upper()])
            ),
            st.text(alphabet="abc, -XCustomLinkkeep-alive", max_size=20),
        ),
        max_size=10,
    )
)
def test_response_headers_never_carry_hop_by_hop(items: list[tuple[str, str]]) -> None:
    upstream = Headers(items)
    named = {
        token.strip().lower()
        for value in upstream.get_all("connection")
        for token in value.split(",")
    }
    kept = client_response_headers(upstream).items
    hop = {"connection", "keep-alive", "transfer-encoding", "set-cookie", "upgrade"}
    assert not {name.lower() for name, _ in kept} & (hop | named)
    expected = [(name, value) for name, value in items if name.lower() not in hop | named]
    assert kept == expected
