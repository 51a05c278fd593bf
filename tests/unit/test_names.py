"""Repository names, tags, digests and the prefix namespace (crev/names.py)."""

from __future__ import annotations

import copy

import pytest

from crev.errors import CrevError, InvalidNameError
from crev.names import (
    MAX_NAME_LENGTH,
    Digest,
    Namespace,
    RepositoryName,
    Tag,
    is_digest,
    is_tag,
    vanity_name_of,
)
from tests.support.refusals import refused

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8
COMPONENT_GRAMMAR = "[a-z0-9]+((.|_|__|-+)[a-z0-9]+)*"


# --- RepositoryName.parse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "0",
        "a/b",
        "a-b",
        "a--b",
        "a---b",
        "a__b",
        "a.b",
        "a_b",
        "a_b/c-d",
        "library/ubuntu",
        "org/team/tool",
        "a1.b2_c3__d4-e5",
        "x/manifests",
        "tags/list",
        "a" * MAX_NAME_LENGTH,
    ],
)
def test_parse_accepts_valid_names(text: str) -> None:
    name = RepositoryName.parse(text)
    assert name == RepositoryName(text)
    assert name.value == text
    assert str(name) == text


def test_a_name_a_tag_and_a_digest_are_never_one_another() -> None:
    text = "sha256"
    assert RepositoryName(text) != Tag(text)
    assert Tag(text) != Digest(text)
    assert RepositoryName(text) != text
    assert len({RepositoryName(text), Tag(text), Digest(text)}) == 3
    assert str(RepositoryName(text)) == str(Tag(text)) == str(Digest(text)) == text


def test_a_word_is_immutable_and_orders_only_among_its_kind() -> None:
    tag = Tag("1")
    with pytest.raises(AttributeError):
        tag.value = "2"
    with pytest.raises(AttributeError):
        del tag.value
    assert tag.value == "1"
    with pytest.raises(TypeError):
        _ = Tag("1") < Digest("1")
    assert copy.copy(tag) == tag
    assert repr(tag) == "Tag(value='1')"


def test_names_order_by_value() -> None:
    assert sorted([RepositoryName("b"), RepositoryName("a/b"), RepositoryName("a")]) == [
        RepositoryName("a"),
        RepositoryName("a/b"),
        RepositoryName("b"),
    ]


@pytest.mark.parametrize(
    ("text", "component"),
    [
        ("A", "A"),
        ("Tool", "Tool"),
        ("a/B", "B"),
        ("-a", "-a"),
        ("a-", "a-"),
        ("_a", "_a"),
        ("a_", "a_"),
        (".a", ".a"),
        ("a.", "a."),
        ("a..b", "a..b"),
        ("a___b", "a___b"),
        ("a_.b", "a_.b"),
        ("a.-b", "a.-b"),
        (".", "."),
        ("..", ".."),
        ("a/..", ".."),
        ("../a", ".."),
        ("a/./b", "."),
        ("a//b", ""),
        ("/a", ""),
        ("a/", ""),
        ("/", ""),
        ("a%2Fb", "a%2Fb"),
        ("a%2fb", "a%2fb"),
        ("%2e%2e", "%2e%2e"),
        ("%2E%2E", "%2E%2E"),
        ("a\\b", "a\\b"),
        ("a b", "a b"),
        ("a\tb", "a\tb"),
        ("a\n", "a\n"),
        ("\na", "\na"),
        ("a\x00", "a\x00"),
        ("a:b", "a:b"),
        ("a@b", "a@b"),
        ("a?b", "a?b"),
        ("a#b", "a#b"),
        # Unicode look-alikes: fullwidth Latin, Cyrillic a and o, dotless i, superscript 1.
        ("\uff41", "\uff41"),
        ("\uff54ool", "\uff54ool"),
        ("\u0430", "\u0430"),
        ("t\u043eol", "t\u043eol"),
        ("\u0131", "\u0131"),
        ("a\u00b9", "a\u00b9"),
        ("\u0661", "\u0661"),  # Arabic-Indic digit one
    ],
)
def test_parse_refuses_invalid_names(text: str, component: str) -> None:
    with refused() as refusal:
        RepositoryName.parse(text)
    error = refusal
    assert error.status == 400
    assert error.code == "NAME_INVALID"
    assert error.message == (
        f"invalid repository name {text!r}: component {component!r} does not match "
        f"{COMPONENT_GRAMMAR}"
    )
    assert repr(text) in error.message
    assert error.detail == {"name": text}


def test_parse_refuses_empty_name() -> None:
    with refused() as refusal:
        RepositoryName.parse("")
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")
    assert refusal.message == "repository name is empty"


@pytest.mark.parametrize("length", [MAX_NAME_LENGTH + 1, 300, 10_000])
def test_parse_refuses_over_long_names(length: int) -> None:
    with refused() as refusal:
        RepositoryName.parse("a" * length)
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")
    assert refusal.message == (
        f"repository name {'a' * 64!r}... is {length} characters; "
        f"at most {MAX_NAME_LENGTH} are allowed"
    )


def test_length_limit_counts_slashes() -> None:
    exactly = "/".join(["ab"] * 85)  # 85 * 2 + 84 = 254
    assert len(exactly) == 254
    assert RepositoryName.parse(exactly + "c").value == exactly + "c"
    with pytest.raises(CrevError):
        RepositoryName.parse(exactly + "cd")


def test_registry_error_body_is_a_distribution_error() -> None:
    with refused() as refusal:
        RepositoryName.parse("A")
    assert refusal.body() == (
        b'{"errors": [{"code": "NAME_INVALID", "message": "invalid repository name \'A\': '
        b"component 'A' does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*\", "
        b'"detail": {"name": "A"}}]}'
    )


# --- tags and digests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["latest", "1", "v1.2.3", "_", "_x", "A", "1.0-rc_1", "sha256-" + "a" * 64, "a" * 128],
)
def test_is_tag_true(text: str) -> None:
    assert is_tag(text) is True


@pytest.mark.parametrize(
    "text",
    ["", ".x", "-x", "a" * 129, "a/b", "a:b", "a b", "a\n", "latest\n", "\u0430", "a+b", "a@b"],
)
def test_is_tag_false(text: str) -> None:
    assert is_tag(text) is False


def test_tag_boundary_is_128_characters() -> None:
    assert is_tag("x" * 127) is True
    assert is_tag("x" * 128) is True
    assert is_tag("x" * 129) is False


@pytest.mark.parametrize(
    "text",
    [
        SHA256,
        SHA512,
        "sha384:abc",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "a.b_c-d:x=",
        "a:b",
    ],
)
def test_is_digest_true(text: str) -> None:
    assert is_digest(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "sha256:" + "g" * 64,
        "sha512:" + "a" * 64,
        "sha512:" + "a" * 127,
        "SHA256:" + "a" * 64,
        "sha256::" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        "sha-:abc",
        "sha256:ab+c",
        "sha256:ab/c",
        "latest",
    ],
)
def test_is_digest_false(text: str) -> None:
    assert is_digest(text) is False


def test_parse_digest_returns_valid_digest() -> None:
    assert Digest.parse(SHA256) == Digest(SHA256)
    assert str(Digest.parse(SHA256)) == SHA256


@pytest.mark.parametrize("text", ["latest", "sha256:abc", "sha256:" + "A" * 64, ""])
def test_parse_digest_refuses(text: str) -> None:
    with refused() as refusal:
        Digest.parse(text)
    assert refusal.status == 400
    assert refusal.code == "DIGEST_INVALID"
    assert refusal.message == f"invalid digest {text!r}"
    assert refusal.detail == {"digest": text}


# --- Namespace --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "name", "upstream"),
    [
        ("acme", "tool", "acme/tool"),
        ("acme", "team/tool", "acme/team/tool"),
        ("acme", "acme", "acme/acme"),
        ("org/team", "tool", "org/team/tool"),
        ("org/team", "a/b", "org/team/a/b"),
        ("", "tool", "tool"),
        ("", "a/b", "a/b"),
    ],
)
def test_to_upstream(prefix: str, name: str, upstream: str) -> None:
    assert Namespace(prefix).to_upstream(RepositoryName.parse(name)) == RepositoryName(upstream)


@pytest.mark.parametrize(
    ("prefix", "upstream", "vanity"),
    [
        ("acme", "acme/tool", "tool"),
        ("acme", "acme/team/tool", "team/tool"),
        ("acme", "acme/acme", "acme"),
        ("org/team", "org/team/tool", "tool"),
        ("", "tool", "tool"),
        ("", "a/b", "a/b"),
    ],
)
def test_to_vanity(prefix: str, upstream: str, vanity: str) -> None:
    assert vanity_name_of(upstream, Namespace(prefix)) == RepositoryName(vanity)


@pytest.mark.parametrize(
    ("prefix", "upstream"),
    [
        ("acme", "acme"),
        ("acme", "acme/"),
        ("acme", "acmefoo/x"),
        ("acme", "acme-x/y"),
        ("acme", "other/x"),
        ("acme", "x/acme/y"),
        ("acme", "ACME/x"),
        ("acme", "acme/X"),
        ("acme", "acme//x"),
        ("acme", "acme/../x"),
        ("acme", "/acme/x"),
        ("acme", ""),
        ("org/team", "org/x"),
        ("org/team", "org/team"),
        ("org/team", "org/teamx/y"),
        ("", ""),
        ("", "A"),
        ("", "host:5000/a"),
        ("", "user/../x"),
    ],
)
def test_to_vanity_outside_prefix_or_invalid_is_none(prefix: str, upstream: str) -> None:
    assert vanity_name_of(upstream, Namespace(prefix)) is None


def test_to_upstream_length_boundary() -> None:
    namespace = Namespace("acme")
    longest = "a" * (MAX_NAME_LENGTH - len("acme/"))
    assert namespace.to_upstream(RepositoryName(longest)).value == "acme/" + longest
    too_long = longest + "b"
    with refused() as refusal:
        namespace.to_upstream(RepositoryName(too_long))
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")
    assert refusal.message == (
        f"repository name {too_long!r} is too long: upstream it is "
        f"{MAX_NAME_LENGTH + 1} characters, at most {MAX_NAME_LENGTH} are allowed"
    )


OFFICIAL = Namespace("", official_images=True)


@pytest.mark.parametrize(
    ("vanity", "upstream"),
    [
        ("alpine", "library/alpine"),
        ("a", "library/a"),
        ("bitnami/redis", "bitnami/redis"),
        ("library/alpine", "library/alpine"),
        ("a/b/c", "a/b/c"),
    ],
)
def test_official_images_to_upstream(vanity: str, upstream: str) -> None:
    assert OFFICIAL.to_upstream(RepositoryName(vanity)) == RepositoryName(upstream)


@pytest.mark.parametrize(
    ("upstream", "vanity"),
    [
        ("library/alpine", "alpine"),
        ("bitnami/redis", "bitnami/redis"),
        ("library/a/b", "library/a/b"),
        ("alpine", "alpine"),
        ("library/", None),
        ("library/Alpine", None),
        ("library", "library"),
    ],
)
def test_official_images_to_vanity(upstream: str, vanity: str | None) -> None:
    assert vanity_name_of(upstream, OFFICIAL) == (RepositoryName(vanity) if vanity else None)


def test_official_images_length_boundary() -> None:
    longest = "a" * (MAX_NAME_LENGTH - len("library/"))
    assert OFFICIAL.to_upstream(RepositoryName(longest)).value == "library/" + longest
    with refused() as refusal:
        OFFICIAL.to_upstream(RepositoryName(longest + "b"))
    assert (refusal.status, refusal.code) == (400, "NAME_INVALID")


def test_prefix_wins_over_official_images() -> None:
    namespace = Namespace("acme", official_images=True)
    assert namespace.to_upstream(RepositoryName("alpine")) == RepositoryName("acme/alpine")
    assert vanity_name_of("acme/alpine", namespace) == RepositoryName("alpine")
    assert vanity_name_of("library/alpine", namespace) is None


def test_namespace_parse_official_images() -> None:
    assert Namespace.parse("", official_images=True) == OFFICIAL
    assert Namespace.parse("acme") == Namespace("acme", official_images=False)


def test_empty_prefix_never_lengthens() -> None:
    name = RepositoryName("a" * MAX_NAME_LENGTH)
    assert Namespace("").to_upstream(name) is name


@pytest.mark.parametrize(
    ("raw", "prefix"),
    [
        ("acme", "acme"),
        ("/acme/", "acme"),
        ("  acme  ", "acme"),
        ("org/team", "org/team"),
        ("/org/team/", "org/team"),
        ("", ""),
        ("   ", ""),
        ("/", ""),
    ],
)
def test_namespace_parse(raw: str, prefix: str) -> None:
    assert Namespace.parse(raw) == Namespace(prefix)


def test_default_namespace_is_empty() -> None:
    assert Namespace().prefix == ""


@pytest.mark.parametrize(
    "raw", ["Acme", "acme//team", "ac me", "..", "acme/../x", "acme%2Fx", "\u0430cme", "a" * 256]
)
def test_namespace_parse_refuses_invalid_prefix(raw: str) -> None:
    with pytest.raises(InvalidNameError):
        Namespace.parse(raw)
