"""The anonymous tokens an upstream's realm gave crev's clients, kept so the next client that
brings no login and asks for the same scopes is answered without asking the realm.

A realm gives every anonymous client the same token for the same request, so an answer is kept
by exactly what was asked (the realm's URL with its parameters, in a canonical order) and only
for a request that carries nothing of a client's: no `Authorization`, no credential parameter,
no `account` (the caller decides that). Only a 200 whose token crev can read, with a lifetime
the realm states and no refresh token, is kept. It is handed out while at least
`MIN_LEFT_SECONDS` and a third of its life are left, with `expires_in` what is left and
`issued_at` now, so a client's own expiry stays true; after that the realm is asked again.
Kept tokens go with the upstream (new settings, `Process.forget`); a token the registry refuses
is not forgotten sooner, as the expiry already bounds how long it is handed out.
docs/internals.md says why.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from ..messages import Headers
from ..urls import URL
from .response import HeldAnswer, UpstreamResponse
from .token_cache import keep_bounded
from .token_response import stated_lifetime, token_document, token_of

# Enough to be worth keeping and handing on: a client that gets a token with less than this
# may need another during its pull, and the token spec's 60 s default is never kept.
MIN_LEFT_SECONDS = 60.0
# And no less than this share of the token's life: a client gets at least a third of what the
# realm would give it, and a warm crev asks the realm once per two thirds of a token's life.
MIN_LEFT_SHARE = 1 / 3
# Anonymous tokens are asked per repository: a pull asks for one or two scopes.
MAX_KEPT_TOKENS = 256
# A token answer is a JWT and its lifetime, a few KiB; a larger one is handed on, not kept.
MAX_KEPT_BODY = 64 * 1024

# A realm's URL without its query, and the query's parameters sorted.
AskedOfRealm = tuple[str, tuple[tuple[str, str], ...]]


class _Kept(NamedTuple):
    document: dict[str, Any]
    lifetime: float
    # On the clock of the upstream (`time.monotonic` unless a test gives another).
    expires_at: float


def key_of(url: URL) -> AskedOfRealm:
    """What an anonymous token request asks of a realm, whatever the order of its parameters."""
    path, _, query = url.target.partition("?")
    return (f"{url.origin}{path}", tuple(sorted(parse_qsl(query, keep_blank_values=True))))


class AnonymousTokens:
    """The anonymous tokens one upstream's realm gave, by what was asked."""

    def __init__(
        self,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
        max_entries: int = MAX_KEPT_TOKENS,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self.max_entries = max_entries
        self._kept: OrderedDict[AskedOfRealm, _Kept] = OrderedDict()
        self._lock = threading.Lock()

    def recall(self, url: URL) -> HeldAnswer | None:
        """The kept token for the request of `url`, while enough of its life is left."""
        key = key_of(url)
        with self._lock:
            kept = self._kept.get(key)
            if kept is None:
                return None
            left = kept.expires_at - self._clock()
            if left < max(MIN_LEFT_SECONDS, kept.lifetime * MIN_LEFT_SHARE):
                del self._kept[key]
                return None
        issued_at = dt.datetime.fromtimestamp(int(self._wall_clock()), dt.UTC)
        document = {
            **kept.document,
            "expires_in": int(left),
            "issued_at": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body = json.dumps(document).encode()
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
                ("Content-Length", str(len(body))),
            ]
        )
        return HeldAnswer(200, headers, body, "GET", from_memory=True)

    def learned_from(
        self, url: URL, answer: UpstreamResponse, asked_at: float, limit: int, timeout: float
    ) -> HeldAnswer:
        """The realm's answer to the anonymous request of `url` (asked at `asked_at`), read
        whole (up to `limit`), and its token kept when it is one worth handing on."""
        held = answer.held(limit, timeout)
        if held.status == 200 and len(held.body) <= MAX_KEPT_BODY:
            self._keep(key_of(url), held.body, asked_at)
        return held

    def forget(self) -> None:
        with self._lock:
            self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)

    def _keep(self, key: AskedOfRealm, body: bytes, asked_at: float) -> None:
        document = token_document(body)
        if document is None or token_of(document) is None or "refresh_token" in document:
            return
        lifetime = stated_lifetime(document)
        if lifetime is None or lifetime <= MIN_LEFT_SECONDS:
            # No lifetime stated (the spec's default is 60 s) or one too short to hand on.
            return
        kept = _Kept(document, float(lifetime), asked_at + lifetime)
        with self._lock:
            keep_bounded(self._kept, key, kept, self.max_entries, self._clock)
