"""What a token realm answers (crev/upstream/token_response.py): the token, as the token spec or
OAuth2 names it, and its lifetime."""

from __future__ import annotations

import pytest

from crev.upstream.token_response import (
    DEFAULT_EXPIRES_IN,
    EXPIRY_MARGIN,
    kept_for,
    stated_lifetime,
    token_in,
)


@pytest.mark.parametrize(
    ("body", "token", "expires_in"),
    [
        (b'{"token": "t", "expires_in": 300}', "t", 300),
        (b'{"access_token": "oauth", "expires_in": 60}', "oauth", 60),
        (b'{"token": "t", "access_token": "other"}', "t", DEFAULT_EXPIRES_IN),
        (b'{"token": "", "access_token": "oauth"}', "oauth", DEFAULT_EXPIRES_IN),
        (b'{"token": "t", "expires_in": 0}', "t", DEFAULT_EXPIRES_IN),
        (b'{"token": "t", "expires_in": "120"}', "t", 120),
        (b'{"token": "t", "expires_in": "soon"}', "t", None),
        (b'{"token": "t", "expires_in": [1]}', "t", None),
        # Python's json reads these non-standard numbers; no lifetime is infinite.
        (b'{"token": "t", "expires_in": Infinity}', "t", None),
        (b'{"token": "t", "expires_in": 1e400}', "t", None),
        (b'{"token": "t", "expires_in": NaN}', "t", None),
        (b'{"token": 5}', None, DEFAULT_EXPIRES_IN),
        (b'{"token": ""}', None, DEFAULT_EXPIRES_IN),
        (b"{}", None, DEFAULT_EXPIRES_IN),
        (b'["t"]', None, None),
        (b"not json", None, None),
        (b"", None, None),
    ],
)
def test_token_in(body: bytes, token: str | None, expires_in: int | None) -> None:
    assert token_in(body) == (token, expires_in)


def test_a_token_is_kept_until_shortly_before_it_expires() -> None:
    assert kept_for(300) == 300 - EXPIRY_MARGIN
    # A token shorter-lived than the margin is kept for half its life, never past it.
    assert kept_for(1) == 0.5
    assert kept_for(2 * EXPIRY_MARGIN) == EXPIRY_MARGIN


@pytest.mark.parametrize(
    ("document", "lifetime"),
    [
        ({"expires_in": 300}, 300),
        ({}, None),
        ({"expires_in": 0}, None),
        ({"expires_in": -5}, None),
        ({"expires_in": "300"}, None),
        ({"expires_in": 300.0}, None),
        ({"expires_in": True}, None),
        ({"expires_in": None}, None),
    ],
)
def test_a_stated_lifetime_is_a_positive_whole_number(
    document: dict[str, object], lifetime: int | None
) -> None:
    assert stated_lifetime(document) == lifetime
