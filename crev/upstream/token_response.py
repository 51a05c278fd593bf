"""What a token realm answers: the token in it, how long crev keeps it, and how much of the
answer crev reads.

The token spec names the token `token`; OAuth2's `access_token` is accepted as well, as docker
does. A response without a lifetime is good for the spec's default.
"""

from __future__ import annotations

import json

# The token spec's default lifetime when a response names none.
DEFAULT_EXPIRES_IN = 60
# Refresh a token this long before the realm says it expires, so it never lapses mid-request.
EXPIRY_MARGIN = 15
# Token responses are a few KiB (a JWT, its lifetime); crev reads them whole, up to this.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


def token_in(body: bytes) -> tuple[str | None, int | None]:
    """The token (`token`, or OAuth2's `access_token`) and its lifetime in seconds from a token
    response; None for what is missing or malformed."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    token = document.get("token") or document.get("access_token")
    try:
        expires_in: int | None = int(document.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (ValueError, TypeError, OverflowError):
        # OverflowError: json reads `Infinity` and `1e400` as an infinite float.
        expires_in = None
    return (token if isinstance(token, str) and token else None), expires_in


def kept_for(expires_in: int) -> float:
    """How long crev keeps a token the realm says lasts `expires_in` seconds: until shortly
    before it expires, and half its life where that is shorter than the margin."""
    return max(expires_in - EXPIRY_MARGIN, expires_in / 2)
