"""What a token realm answers: the token in it, how long crev keeps it, and how much of the
answer crev reads.

The token spec names the token `token`; OAuth2's `access_token` is accepted as well, as docker
does. A response without a lifetime is good for the spec's default.
"""

from __future__ import annotations

import json
from typing import Any

# The token spec's default lifetime when a response names none.
DEFAULT_EXPIRES_IN = 60
# Refresh a token this long before the realm says it expires, so it never lapses mid-request.
EXPIRY_MARGIN = 15
# Token responses are a few KiB (a JWT, its lifetime); crev reads them whole, up to this.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


def token_in(body: bytes) -> tuple[str | None, int | None]:
    """The token (`token`, or OAuth2's `access_token`) and its lifetime in seconds from a token
    response; None for what is missing or malformed."""
    document = token_document(body)
    if document is None:
        return None, None
    try:
        expires_in: int | None = int(document.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (ValueError, TypeError, OverflowError):
        # OverflowError: json reads `Infinity` and `1e400` as an infinite float.
        expires_in = None
    return token_of(document), expires_in


def token_document(body: bytes) -> dict[str, Any] | None:
    """A token response's JSON object, or None for a body that is not one."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def token_of(document: dict[str, Any]) -> str | None:
    """The token a response's JSON object holds, if any."""
    token = document.get("token") or document.get("access_token")
    return token if isinstance(token, str) and token else None


def stated_lifetime(document: dict[str, Any]) -> int | None:
    """The lifetime in seconds a response's JSON object states, if it states a positive whole
    one (no default: the caller decides what a missing lifetime means)."""
    expires_in = document.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        return None
    return expires_in


def kept_for(expires_in: int) -> float:
    """How long crev keeps a token the realm says lasts `expires_in` seconds: until shortly
    before it expires, and half its life where that is shorter than the margin."""
    return max(expires_in - EXPIRY_MARGIN, expires_in / 2)
