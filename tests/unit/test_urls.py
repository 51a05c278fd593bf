"""Hosts, origins and URLs (crev/urls.py)."""

from __future__ import annotations

import pytest

from crev.urls import DOCKER_HUB, URL, Origin, is_http_url, is_valid_host

GHCR = Origin("https", "ghcr.io")
LOCAL = Origin("http", "127.0.0.1:5000")


@pytest.mark.parametrize(
    ("origin", "scheme", "netloc", "same"),
    [
        (GHCR, "https", "ghcr.io", True),
        (GHCR, "https", "GHCR.io", True),
        (GHCR, "https", "ghcr.io:443", True),
        (GHCR, "HTTPS", "ghcr.io:443", True),
        (GHCR, "https", "ghcr.io:80", False),
        (GHCR, "https", "ghcr.io:8443", False),
        (GHCR, "https", "ghcr.io.", False),
        (GHCR, "https", "user@ghcr.io", False),
        (GHCR, "https", "evil.io", False),
        (LOCAL, "http", "127.0.0.1:5000", True),
        (LOCAL, "http", "127.0.0.1", False),
        (Origin("http", "reg"), "http", "reg:80", True),
        (Origin("https", "reg:443"), "https", "reg", True),
        # Another scheme is another origin, even on the same host and port.
        (GHCR, "http", "ghcr.io", False),
        (GHCR, "http", "ghcr.io:443", False),
        (LOCAL, "https", "127.0.0.1:5000", False),
    ],
)
def test_is_same_origin(origin: Origin, scheme: str, netloc: str, same: bool) -> None:
    assert origin.is_same_origin(scheme, netloc) is same


def test_an_origin_and_its_urls() -> None:
    assert str(GHCR) == "https://ghcr.io"
    url = GHCR.url("/v2/acme/x/tags/list?n=10")
    assert url == URL(GHCR, "/v2/acme/x/tags/list?n=10")
    assert str(url) == "https://ghcr.io/v2/acme/x/tags/list?n=10"
    assert url.path == "/v2/acme/x/tags/list"
    assert str(LOCAL.url("/v2/")) == "http://127.0.0.1:5000/v2/"


def test_an_origin_is_a_value_of_its_own() -> None:
    assert Origin("https", "ghcr.io") == Origin("https", "ghcr.io")
    assert Origin("https", "ghcr.io") != ("https", "ghcr.io")
    assert len({Origin("https", "ghcr.io"), Origin("https", "ghcr.io")}) == 1
    with pytest.raises(AttributeError):
        Origin("https", "ghcr.io").host = "elsewhere"  # type: ignore[misc]


def test_docker_hub_is_known_by_its_api_host() -> None:
    assert Origin("https", DOCKER_HUB).is_docker_hub
    assert not GHCR.is_docker_hub


@pytest.mark.parametrize(
    ("text", "origin", "target"),
    [
        ("https://auth.example/token", Origin("https", "auth.example"), "/token"),
        ("HTTPS://auth.example:8443/t?a=b", Origin("https", "auth.example:8443"), "/t?a=b"),
        ("http://127.0.0.1:5001/auth", Origin("http", "127.0.0.1:5001"), "/auth"),
        # No request carries a fragment; an empty path is the root.
        ("https://auth.example/token#x", Origin("https", "auth.example"), "/token"),
        ("https://auth.example", Origin("https", "auth.example"), "/"),
    ],
)
def test_parse(text: str, origin: Origin, target: str) -> None:
    assert URL.parse(text) == URL(origin, target)


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("https://a.example/token", [], "https://a.example/token"),
        (
            "https://a.example/token",
            [("scope", "repository:x:pull")],
            "https://a.example/token?scope=repository%3Ax%3Apull",
        ),
        # A realm may carry a query of its own, which is kept.
        (
            "https://a.example/token?route=tools%2F",
            [("service", "s")],
            "https://a.example/token?route=tools%2F&service=s",
        ),
        ("https://a.example/t", [("a", "1"), ("a", "2")], "https://a.example/t?a=1&a=2"),
    ],
)
def test_with_query(url: str, params: list[tuple[str, str]], expected: str) -> None:
    assert str(URL.parse(url).with_query(params)) == expected


@pytest.mark.parametrize(
    ("host", "valid"),
    [
        ("ghcr.io", True),
        ("127.0.0.1:5000", True),
        ("[::1]:5000", True),
        ("", False),
        ("ghcr.io:", False),
        ("ghcr.io:abc", False),
        ("ghcr.io/x", False),
        ("user@ghcr.io", False),
        ("ghcr.io?x", False),
        ("gh cr.io", False),
        ("ghcr.io%2f", False),
    ],
)
def test_is_valid_host(host: str, valid: bool) -> None:
    assert is_valid_host(host) is valid


def test_a_host_holds_visible_ascii_and_no_delimiter() -> None:
    for code in [*range(0x200), 0x2028, 0x3000, 0xFEFF, 0x1F600]:
        char = chr(code)
        allowed = 0x20 < code < 0x7F and char not in "/?#@\\%:[]"
        assert is_valid_host(f"a{char}b.io") is allowed, repr(char)
        assert is_valid_host(char) is allowed, repr(char)


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://auth.example/token", True),
        ("http://127.0.0.1:5001/auth", True),
        ("ftp://auth.example/token", False),
        ("/api/token", False),
        ("https:///token", False),
        ("https://[::1/token", False),
    ],
)
def test_is_http_url(url: str, valid: bool) -> None:
    assert is_http_url(url) is valid
