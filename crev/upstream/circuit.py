"""A circuit per upstream, so that an outage costs its detection once, not on every request.

After the upstream fails a read (it cannot be reached, answers too slowly, or answers 5xx or
429), the circuit opens: requests skip it for a cool-down and go straight to the route's mirrors.
The first request after the cool-down is the trial: it asks the upstream again, and its outcome
closes the circuit or opens it for another cool-down. Requests that come while the trial is on
keep skipping the upstream, so a still-hanging upstream holds one request, not all of them.

State is per warm instance (a process's memory), as the token cache is; the clock is injected,
so tests move time instead of waiting for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum

# How long an upstream that failed is skipped. Short enough that a recovered upstream serves
# again within half a minute; long enough that an upstream that never answers costs one wait
# for CREV_FAILOVER_SECONDS per cool-down, not one per request.
COOL_DOWN_SECONDS = 30.0

Clock = Callable[[], float]


class State(Enum):
    # The upstream is asked.
    CLOSED = "closed"
    # The upstream is skipped until the cool-down ends.
    OPEN = "open"
    # One request is asking the upstream again; the others skip it until that one's outcome.
    TRIAL = "trial"


class Circuit:
    """One upstream's circuit: whether a request asks it, and what its answers said."""

    def __init__(self, cool_down: float = COOL_DOWN_SECONDS, clock: Clock = time.monotonic) -> None:
        if not 0 < cool_down <= COOL_DOWN_SECONDS:
            raise ValueError(f"a cool-down is above 0 and at most {COOL_DOWN_SECONDS:g} s")
        self._cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        # When the cool-down ends (OPEN), or when a trial is given up as lost (TRIAL): a
        # request that never reports its outcome must not keep the upstream skipped for ever.
        self._until = 0.0

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def should_try(self) -> bool:
        """Whether this request asks the upstream: always while the circuit is closed; after a
        failure, not until the cool-down ends, and then for one request at a time, the trial."""
        with self._lock:
            if self._state is State.CLOSED:
                return True
            now = self._clock()
            if now < self._until:
                return False
            # The cool-down ended, or the trial before this one never reported back.
            self._state = State.TRIAL
            self._until = now + self._cool_down
            return True

    def succeeded(self) -> None:
        """The upstream answered: it is asked again by every request."""
        with self._lock:
            self._state = State.CLOSED
            self._until = 0.0

    def failed(self) -> None:
        """The upstream failed a read: skipped for a cool-down from now."""
        with self._lock:
            self._state = State.OPEN
            self._until = self._clock() + self._cool_down
