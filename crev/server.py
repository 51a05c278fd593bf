"""The local server: the Vercel functions behind the paths `vercel.json` declares.

Paths are read from `vercel.json` and the `api/` folder themselves, so what runs locally is
what Vercel deploys.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

from .errors import ConfigError
from .process import Process
from .wire.handler import Function, FunctionHandler

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FunctionPath(NamedTuple):
    """A path Vercel serves a function at: its own, or a source of `vercel.json`'s rewrites
    (Vercel's word for its rules)."""

    pattern: re.Pattern[str]
    function: Function
    source: str
    # The function it serves, `/api/<name>`.
    destination: str


def load_function_paths(root: Path = PROJECT_ROOT) -> list[FunctionPath]:
    """`api/<name>.py` at `/api/<name>`, then the rewrites of `vercel.json`, as on Vercel; a
    ConfigError naming the file for one the local server cannot follow."""
    functions = {
        f"/api/{path.stem}": _load_function(path) for path in sorted((root / "api").glob("*.py"))
    }
    # Vercel serves a function's own path before any rewrite applies.
    paths = [
        FunctionPath(re.compile(re.escape(path)), function, path, path)
        for path, function in functions.items()
    ]
    for source, destination in _vercel_rewrites(root / "vercel.json"):
        if destination not in functions:
            raise ConfigError(f"vercel.json rewrites {source!r} to unknown {destination!r}")
        try:
            pattern = _source_pattern(source)
        except re.error as error:
            raise ConfigError(f"vercel.json: rewrite source {source!r}: {error}") from None
        paths.append(FunctionPath(pattern, functions[destination], source, destination))
    return paths


def _vercel_rewrites(path: Path) -> list[tuple[str, str]]:
    """The `(source, destination)` of each rewrite `vercel.json` declares."""
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path.name}: {error.strerror or error}") from None
    except ValueError as error:
        raise ConfigError(f"{path.name} is not valid JSON: {error}") from None
    rewrites = config.get("rewrites", []) if isinstance(config, dict) else None
    if not isinstance(rewrites, list):
        raise ConfigError(f"{path.name}: 'rewrites' must be a list")
    pairs: list[tuple[str, str]] = []
    for rewrite in rewrites:
        source = rewrite.get("source") if isinstance(rewrite, dict) else None
        destination = rewrite.get("destination") if isinstance(rewrite, dict) else None
        if not isinstance(source, str) or not isinstance(destination, str):
            raise ConfigError(
                f"{path.name}: rewrite {rewrite!r} needs a 'source' and a 'destination'"
            )
        pairs.append((source, destination))
    return pairs


def _source_pattern(source: str) -> re.Pattern[str]:
    """A Vercel rewrite source (path-to-regexp) as a regex; `:name*` and `:name` become groups."""
    pattern = re.sub(r":(\w+)\*", r"(?P<\1>.*)", source)
    pattern = re.sub(r":(\w+)(?![\w(])", r"(?P<\1>[^/]+)", pattern)
    return re.compile(pattern)


def _load_function(path: Path) -> Function:
    spec = importlib.util.spec_from_file_location(f"crev_api_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, "handler", None)
    if not (isinstance(handler, type) and issubclass(handler, FunctionHandler)):
        raise ConfigError(f"{path} does not define a crev handler class named 'handler'")
    return handler.function


def make_dispatcher(paths: list[FunctionPath], process: Process) -> type[FunctionHandler]:
    """A handler that runs the function each path is served by, all in one process."""

    class Dispatcher(FunctionHandler):
        server: LocalServer

        def function_for(self, path: str) -> Function | None:
            for served in paths:
                if served.pattern.fullmatch(path):
                    return served.function
            return None

        def run_function(self) -> None:
            with self.server.in_flight:
                super().run_function()
            if self.server.in_flight.draining:
                # Stopping: this connection takes no further request.
                self.close_connection = True

    Dispatcher.process = process
    return Dispatcher


class InFlight:
    """The requests being answered, so that stopping can wait for them (a bounded time)."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self.draining = False

    def __enter__(self) -> None:
        with self._changed:
            self._count += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    @property
    def count(self) -> int:
        with self._changed:
            return self._count

    def drain(self, seconds: float) -> int:
        """Wait up to `seconds` for the requests in flight to be answered; how many were not."""
        self.draining = True
        deadline = time.monotonic() + seconds
        with self._changed:
            while self._count and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self._count


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients pull layers in parallel; the default backlog of 5 drops connections.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[FunctionHandler],
        bind_and_activate: bool = True,
    ) -> None:
        self.in_flight = InFlight()
        super().__init__(address, handler, bind_and_activate)


class IPv6LocalServer(LocalServer):
    address_family = socket.AF_INET6


def create_server(
    host: str, port: int, root: Path = PROJECT_ROOT, process: Process | None = None
) -> LocalServer:
    """A server listening on `host` (an IPv4 address or name, or an IPv6 address) and `port`,
    serving every function in `process` (a new one unless given): the local server's
    composition root."""
    server = IPv6LocalServer if ":" in host else LocalServer
    process = Process() if process is None else process
    return server((host, port), make_dispatcher(load_function_paths(root), process))
