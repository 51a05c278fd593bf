"""Fixtures for the unit tests of the modules that send upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.crev_server import forget_learned_state


@pytest.fixture(autouse=True)
def nothing_learned() -> Iterator[None]:
    """Token realms and upstream tokens belong to the process: each test starts without any
    and leaves none behind."""
    forget_learned_state()
    yield
    forget_learned_state()
