"""An upstream's answer to `/v2/`, the ping every pull starts with, as crev learned it: the
next client's ping that brings no login is answered from it, without asking the upstream.

What is kept is what describes the registry rather than one answer: the status (200 for an
upstream that wants no token, 401 for one that does), its challenges, its API version, its
content type and its small body. It is learned from a client's ping crev sent on, or from crev's
own discovery ping where that is what a client's ping gets, and trusted for `KEPT_SECONDS`;
before that, it is forgotten when any answer of the upstream announces a token realm other than
the one crev knew (the upstream changed how it authenticates), and with the upstream itself (new
settings, `Process.forget`). docs/internals.md says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from ..messages import Headers
from .response import HeldAnswer, UpstreamResponse

# How long a learned ping answers for the upstream: a pull's ping within it costs no round
# trip, and a change no answer of the upstream showed (a realm moved behind clients holding
# tokens) is seen by the first ping after it.
KEPT_SECONDS = 300.0
# The largest ping body crev keeps: a registry's is `{}` or one error (under 100 bytes).
MAX_PING_BODY = 64 * 1024
# What a `/v2/` answers to say how the registry authenticates; anything else (a 5xx, a 429, a
# 404 of a host that is no registry) says something of the moment, and is asked again.
_KEPT_STATUSES = frozenset({200, 401})
# The headers that describe the registry; the rest (request ids, rate limits, dates) describe
# one answer.
_KEPT_HEADERS = frozenset({"www-authenticate", "docker-distribution-api-version", "content-type"})


class _Learned(NamedTuple):
    status: int
    headers: Headers
    body: bytes
    learned_at: float


class PingKnowledge:
    """What crev knows of one upstream's answer to a ping that brings no login."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._learned: _Learned | None = None
        self._lock = threading.Lock()

    def recall(self, method: str) -> HeldAnswer | None:
        """The learned answer for a client's ping by `method`, while it is trusted."""
        learned = self._learned
        if learned is None or self._clock() - learned.learned_at >= KEPT_SECONDS:
            return None
        return HeldAnswer(learned.status, learned.headers, learned.body, method, from_memory=True)

    def learned_from(
        self, answer: UpstreamResponse, timeout: float
    ) -> UpstreamResponse | HeldAnswer:
        """The upstream's answer to a ping, learned when it says how the registry
        authenticates (its small body read for it, and its content coding undone); else as it
        came."""
        if not _learnable(answer):
            return answer
        held = answer.held(MAX_PING_BODY, timeout)
        # The headers that describe the registry, and the length of the body kept.
        kept = held.headers.filtered(
            lambda name, value: value
            if name.lower() in _KEPT_HEADERS or name.lower() == "content-length"
            else None
        )
        with self._lock:
            self._learned = _Learned(held.status, kept, held.body, self._clock())
        return held

    def forget(self) -> None:
        with self._lock:
            self._learned = None


def _learnable(answer: UpstreamResponse) -> bool:
    length = answer.headers.get("content-length") or ""
    return (
        answer.method == "GET"
        and answer.status in _KEPT_STATUSES
        and length.isdigit()
        and int(length) <= MAX_PING_BODY
    )
