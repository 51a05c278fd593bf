"""One process's crev, built once where a process starts (the local server, each `api/*.py`
function) and handed to every request it serves: the process's connections upstream, its
settings as the environment gives them, whose upstreams keep the realms and tokens they learn,
and the HTTP date of the current second. Nothing of it lives in a module: a test builds a
process of its own, with an httpx client over `MockTransport` or a clock of its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any

from .config import Settings, settings_and_variables, unknown_variables
from .log import crev_log
from .upstream.connections import Connections

# The names of the variables one reading of the settings asked for, and their values then
# (`bytes` when read from the process's own environment, see `_Environment`).
_Names = tuple[str, ...]
_Values = tuple[str | bytes | None, ...]


class Process:
    """What one process keeps between requests."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        connections: Connections | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._variables = _Environment(self._environ)
        self.connections = Connections() if connections is None else connections
        self._clock = clock
        self._wall_clock = wall_clock
        # Settings by the variables they were read from and their values: checking two dozen
        # variables per request is cheap, while reading the whole environment is not. Each
        # keeps its upstreams, and so what they learned.
        self._settings: dict[tuple[_Names, _Values], Settings] = {}
        # The sets of names read so far, each with its keys in the environment.
        self._variable_sets: dict[_Names, tuple[object, ...]] = {}
        # Warnings given already (the local server's at its start), so that each is given once.
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._date: tuple[int, str] = (0, "")

    def settings(self) -> Settings:
        """Settings for the current environment, parsed once per distinct set of values; a
        variable no setting reads is said once in the log, where a function has no terminal to
        warn in."""
        for names, keys in tuple(self._variable_sets.items()):
            settings = self._settings.get((names, self._variables.values(keys)))
            if settings is not None:
                return settings
        settings, warnings = self.read_settings()
        for warning in warnings:
            crev_log().warning("configuration: %s", warning)
        return settings

    def read_settings(self) -> tuple[Settings, list[str]]:
        """Settings for the current environment, and the warnings not given yet, for the
        caller to give (the local server prints them at its start)."""
        with self._lock:
            settings, names = settings_and_variables(
                self._environ, connections=self.connections, clock=self._clock
            )
            keys = self._variables.keys(names)
            kept = self._settings.setdefault((names, self._variables.values(keys)), settings)
            self._variable_sets[names] = keys
            warnings = [
                warning
                for warning in unknown_variables(self._environ, names)
                if warning not in self._warned
            ]
            self._warned.update(warnings)
        return kept, warnings

    def forget(self) -> None:
        """Forget the settings read and what their upstreams learned (realms, tokens): the next
        request reads the environment anew. Connections stay open."""
        with self._lock:
            self._settings.clear()
            self._variable_sets.clear()

    def close(self) -> None:
        self.forget()
        self.connections.close()

    def http_date(self) -> str:
        """The `Date` of a response now; formatting it anew for each was a visible cost."""
        second = int(self._wall_clock())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]


class _Environment:
    """The values of given variables, looked up for every request to notice a changed
    environment (a test's, `vercel dev`'s). The process's own `os.environ` is read through the
    dict it keeps of encoded names and values: its `get` of an unset name raises and catches a
    KeyError inside, and two dozen look-ups that way were a visible part of a request's CPU."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        data = getattr(environ, "_data", None) if type(environ) is type(os.environ) else None
        self._encoded = isinstance(data, dict)
        self._get: Callable[[Any], str | bytes | None] = (
            data.get if isinstance(data, dict) else environ.get
        )
        self._environ = environ

    def keys(self, names: _Names) -> tuple[object, ...]:
        """The keys `values` looks `names` up by."""
        if not self._encoded:
            return names
        encode = getattr(self._environ, "encodekey")  # noqa: B009 (not in typeshed's _Environ)
        return tuple(encode(name) for name in names)

    def values(self, keys: tuple[object, ...]) -> _Values:
        return tuple(map(self._get, keys))
