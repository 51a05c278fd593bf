"""A cache of upstream tokens, shared by every request of the process.

One miss, one fetch: when several requests miss the same key at once (a pull asks for a
manifest's layers in parallel), one of them fetches and the others wait for it and share its
outcome, token or error, instead of each asking the realm. Tokens that have expired are
dropped, and past `max_entries` the least recently used go first, so a warm instance serving
many repositories keeps a bounded cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import NamedTuple, Protocol

# A token is asked for the scopes of one request, so there is one per repository and access;
# a warm instance serving more repositories than this fetches again for the ones used least.
MAX_CACHED_TOKENS = 4096


class CachedToken(NamedTuple):
    value: str
    # On the clock of the cache (`time.monotonic` unless a test gives another).
    expires_at: float


class _Expiring(Protocol):
    @property
    def expires_at(self) -> float: ...


def keep_bounded[Key: Hashable, Entry: _Expiring](
    store: OrderedDict[Key, Entry],
    key: Key,
    entry: Entry,
    max_entries: int,
    clock: Callable[[], float],
) -> None:
    """Keep `entry` at `key` as the most recently used; past `max_entries`, the expired
    entries go first, then the least recently used."""
    store[key] = entry
    store.move_to_end(key)
    if len(store) <= max_entries:
        return
    now = clock()
    for stale in [key for key, kept in store.items() if kept.expires_at <= now]:
        del store[stale]
    while len(store) > max_entries:
        store.popitem(last=False)


class _Fetch:
    """A fetch under way, which other misses of the same key wait for."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token: CachedToken | None = None
        self.error: BaseException | None = None


class TokenCache:
    """Tokens by the key they were fetched for (realm, scopes, credentials)."""

    def __init__(
        self,
        max_entries: int = MAX_CACHED_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._tokens: OrderedDict[Hashable, CachedToken] = OrderedDict()
        self._fetches: dict[Hashable, _Fetch] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fetch: Callable[[], CachedToken | None]) -> CachedToken | None:
        """The cached token for `key` while it is fresh; otherwise what `fetch` returns, kept
        unless it is None. Concurrent misses of one key call `fetch` once."""
        with self._lock:
            token = self._fresh(key)
            if token is not None:
                return token
            pending = self._fetches.get(key)
            leading = pending is None
            if pending is None:
                pending = self._fetches[key] = _Fetch()
        if not leading:
            # The leader's fetch is bounded by its own upstream timeout.
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.token
        try:
            pending.token = fetch()
        except BaseException as error:
            pending.error = error
            raise
        finally:
            with self._lock:
                del self._fetches[key]
                if pending.token is not None:
                    self._store(key, pending.token)
            pending.done.set()
        return pending.token

    def forget(self, key: Hashable) -> None:
        """Drop the token for `key`, after the upstream answered 401 to it."""
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)

    def _fresh(self, key: Hashable) -> CachedToken | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.expires_at <= self._clock():
            del self._tokens[key]
            return None
        self._tokens.move_to_end(key)
        return token

    def _store(self, key: Hashable, token: CachedToken) -> None:
        keep_bounded(self._tokens, key, token, self.max_entries, self._clock)
