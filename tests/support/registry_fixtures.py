"""The test registry as the tests' fixtures start it: skipped (failed under CI) where its
programs are missing. `running_registry` and `seed_images` are the bodies of the `registry` and
`images` fixtures, shared by the session's (tests/conftest.py) and the harness's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rig.registry import TestRegistry, start_test_registry
from rig.tools import require_binaries

if TYPE_CHECKING:
    import pytest


@contextlib.contextmanager
def run_test_registry(
    workdir: Path, *, tls: bool = False, redirecting: bool = False
) -> Iterator[TestRegistry]:
    """`start_test_registry`, once the calling test is sure to have what it runs."""
    require_binaries("docker-registry", "skopeo")
    with start_test_registry(workdir, tls=tls, redirecting=redirecting) as running:
        yield running


def running_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    """A real distribution registry with token auth, for `seed_images` to fill."""
    with run_test_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running
