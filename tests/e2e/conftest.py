"""The clients the end-to-end tests pull with, each skipped where it is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import require_binaries
from tests.support.containerd import Containerd, run_containerd
from tests.support.docker import Docker, run_dockerd
from tests.support.podman import Podman, fresh_podman


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[Containerd]:
    """A containerd of the test's own: nothing in its content store."""
    require_binaries("containerd", "ctr")
    with run_containerd(tmp_path / "containerd") as daemon:
        yield daemon


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    """A podman of the test's own: no image and no login."""
    require_binaries("podman")
    with fresh_podman(tmp_path / "podman") as fresh:
        yield fresh


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    # One daemon a module: dockerd takes seconds to start, and `docker` resets it for each test.
    require_binaries("dockerd", "docker")
    with run_dockerd(tmp_path_factory.mktemp("dockerd")) as running:
        yield running


@pytest.fixture
def docker(dockerd: Docker) -> Docker:
    """The module's daemon with no image and no login. It may still hold manifests it pulled
    before (docker keeps them in its content store after `image rm`): a test that counts a
    pull's requests runs a daemon of its own."""
    dockerd.remove_images()
    (dockerd.config / "config.json").write_text("{}")
    return dockerd
