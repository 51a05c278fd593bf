"""The local server: both Vercel functions behind the routes `vercel.json` declares.

Routes are read from `vercel.json` and the `api/` folder themselves, so what runs locally is
what Vercel deploys.
"""

from __future__ import annotations

import importlib.util
import json
import re
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

from .handler import Endpoint, FunctionHandler

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Route(NamedTuple):
    pattern: re.Pattern[str]
    endpoint: Endpoint
    source: str


def load_routes(root: Path = PROJECT_ROOT) -> list[Route]:
    """`api/<name>.py` at `/api/<name>`, then the rewrites of `vercel.json`, as on Vercel."""
    functions = {
        f"/api/{path.stem}": _load_endpoint(path) for path in sorted((root / "api").glob("*.py"))
    }
    # Vercel serves a function's own path before any rewrite applies.
    routes = [
        Route(re.compile(re.escape(path)), endpoint, path) for path, endpoint in functions.items()
    ]
    config = json.loads((root / "vercel.json").read_text())
    for rewrite in config.get("rewrites", []):
        destination = rewrite["destination"]
        if destination not in functions:
            raise ValueError(
                f"vercel.json rewrites {rewrite['source']!r} to unknown {destination!r}"
            )
        pattern = _source_pattern(rewrite["source"])
        routes.append(Route(pattern, functions[destination], rewrite["source"]))
    return routes


def _source_pattern(source: str) -> re.Pattern[str]:
    """A Vercel rewrite source (path-to-regexp) as a regex; `:name*` and `:name` become groups."""
    pattern = re.sub(r":(\w+)\*", r"(?P<\1>.*)", source)
    pattern = re.sub(r":(\w+)(?![\w(])", r"(?P<\1>[^/]+)", pattern)
    return re.compile(pattern)


def _load_endpoint(path: Path) -> Endpoint:
    spec = importlib.util.spec_from_file_location(f"crev_api_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, "handler", None)
    if not (isinstance(handler, type) and issubclass(handler, FunctionHandler)):
        raise ImportError(f"{path} does not define a crev handler class named 'handler'")
    return handler.endpoint


def make_dispatcher(routes: list[Route]) -> type[FunctionHandler]:
    class Dispatcher(FunctionHandler):
        def endpoint_for(self, path: str) -> Endpoint | None:
            for route in routes:
                if route.pattern.fullmatch(path):
                    return route.endpoint
            return None

    return Dispatcher


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many clients pull layers in parallel; the default backlog of 5 drops connections.
    request_queue_size = 128


def create_server(host: str, port: int, root: Path = PROJECT_ROOT) -> LocalServer:
    return LocalServer((host, port), make_dispatcher(load_routes(root)))
