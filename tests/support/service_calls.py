"""Calling one of crev's functions (`serve_registry`, `serve_token`, `serve_page`) directly, as
the handler does, for the unit tests of the modules behind them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pytest_httpserver import HTTPServer

from crev.config import Settings
from crev.messages import Headers, Request, Response
from crev.urls import Origin

VANITY = Origin("https", "acme.dev")


def request(
    method: str,
    path: str,
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
) -> Request:
    """A request to `https://acme.dev` as the handler hands it to a function."""
    return Request(
        method,
        path,
        query,
        Headers(headers),
        VANITY,
        body=_once(body) if body is not None else None,
        content_length=len(body) if body is not None else None,
    )


def _once(body: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([body])


def settings_for(
    upstream: HTTPServer, *, clock: Callable[[], float] = time.monotonic, **variables: str
) -> Settings:
    """Settings for one route to the stand-in `upstream` (over plain HTTP), with `variables`
    (names without `CREV_`) on top, keeping tokens on `clock`."""
    env = {
        "CREV_REGISTRY_HOST": f"127.0.0.1:{upstream.port}",
        "CREV_REGISTRY_SCHEME": "http",
        "CREV_UPSTREAM_TIMEOUT": "5",
    }
    env.update({f"CREV_{name.upper()}": value for name, value in variables.items()})
    return Settings.from_env(env, clock=clock)


def with_server_credentials(
    upstream: HTTPServer, *, clock: Callable[[], float] = time.monotonic, **variables: str
) -> Settings:
    """Settings serving the stand-in's `acme/` namespace with crev's own credentials (`crev`,
    `s3cret`) at its `/token` realm."""
    return settings_for(
        upstream,
        clock=clock,
        repo_prefix="acme",
        upstream_username="crev",
        upstream_password="s3cret",
        token_realm=upstream.url_for("/token"),
        **variables,
    )


def body_of(response: Response) -> bytes:
    """The whole body of a function's response, its upstream connection released after."""
    try:
        return b"".join(bytes(chunk) for chunk in response.body)
    finally:
        response.close()


def json_of(response: Response) -> Any:
    return json.loads(body_of(response))
