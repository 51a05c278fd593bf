"""Fixtures for the hardening tests: raw stand-in upstreams and crev in front of them.

`crev` and `upstream` are shared by the tests of a module (starting a server per test would
cost more than the tests), and reset before each test: the upstream forgets what it saw and
behaves well again, crev forgets learned realms and tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rig.crev_process import serving_acme
from tests.support.crev_server import CrevServer, start_crev_server
from tests.support.faulty_upstream import RawUpstream, healthy


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[RawUpstream]:
    with RawUpstream(route=healthy) as server:
        yield server


@pytest.fixture(scope="module")
def module_crev(module_upstream: RawUpstream) -> Iterator[CrevServer]:
    """crev serving `acme/` from the module's upstream, with a 1 s upstream timeout, in the
    default (read-only) mode."""
    with pytest.MonkeyPatch.context() as patch:
        server = start_crev_server(
            patch, **serving_acme(module_upstream.host), upstream_timeout="1"
        )
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def upstream(module_upstream: RawUpstream) -> RawUpstream:
    """A recording upstream that answers a marked 200; a test may set its `route`."""
    module_upstream.reset(healthy)
    return module_upstream


@pytest.fixture
def crev(module_crev: CrevServer, upstream: RawUpstream) -> CrevServer:
    module_crev.forget_learned_state()
    return module_crev


@pytest.fixture
def witness() -> Iterator[RawUpstream]:
    """A second local server that crev must never contact."""
    with RawUpstream(route=healthy) as server:
        yield server


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One client for the whole run (building one per request costs a TLS context each)."""
    with httpx.Client(timeout=10) as client:
        yield client
