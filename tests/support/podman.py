"""`podman` as root with its own throw-away storage, so every pull starts from nothing."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.tools import run_tool

PODMAN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Podman:
    """podman with ``vfs`` storage under ``workdir`` and an empty auth file of its own."""

    workdir: Path
    runroot: Path

    def base_args(self) -> list[str]:
        return [
            "podman",
            "--root",
            str(self.workdir / "root"),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
        ]

    def run(
        self, *args: str, timeout: float = PODMAN_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return run_tool([*self.base_args(), *args], timeout)

    def pull(self, reference: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """``podman pull`` over plain http with this instance's (empty) auth file."""
        return self.run(
            "pull",
            "--tls-verify=false",
            "--authfile",
            str(self.workdir / "auth.json"),
            *extra,
            reference,
        )

    def inspect(self, reference: str) -> dict[str, Any]:
        inspected = json.loads(self.run("image", "inspect", reference).stdout)
        assert len(inspected) == 1, inspected
        return inspected[0]


@contextlib.contextmanager
def fresh_podman(workdir: Path) -> Iterator[Podman]:
    """A podman whose storage, run root and auth file are new and its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "auth.json").write_text(json.dumps({"auths": {}}))
    # podman refuses a run root longer than 50 characters; pytest's tmp paths are longer.
    runroot = Path(tempfile.mkdtemp(prefix="podrun-"))
    try:
        yield Podman(workdir, runroot)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
