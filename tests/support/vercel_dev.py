"""`vercel dev --local` serving a copy of the project: the pinned Vercel CLI builds crev's
functions with its own Python builder and serves them, with no Vercel account.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from rig.crev_process import CrevProcess
from rig.tools import free_port
from rig.vercel_build import PROJECT_ROOT, VERCEL_CLI, build_tools, cli_environment

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
# What a deployment holds; the rest (tests, the CLI itself, caches) stays behind.
_NOT_DEPLOYED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".vercel",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    "tests",
    "bench",
    ".env*",
)


class VercelDev(CrevProcess):
    """`vercel dev` serving the project: a local server process, like `python -m crev`."""


@contextlib.contextmanager
def run_vercel_dev(workdir: Path, **settings: str) -> Iterator[VercelDev]:
    """`vercel dev --local` on a copy of the project, with `settings` as `CREV_<NAME>` in its
    `.env` (local mode reads no environment from Vercel, and passes its own on to nothing)."""
    project = workdir / "project"
    shutil.copytree(PROJECT_ROOT, project, ignore=_NOT_DEPLOYED, symlinks=True)
    (project / ".env").write_text(
        "".join(f"CREV_{name.upper()}={value}\n" for name, value in settings.items())
    )
    port = free_port()
    env = cli_environment(build_tools(workdir / "bin"))
    argv = [
        str(VERCEL_CLI),
        "dev",
        "--local",
        "--yes",
        "--listen",
        f"127.0.0.1:{port}",
        "--global-config",
        str(workdir / "global-config"),
        # Its local queue, cache and schedule servers default to fixed ports.
        "--queue-port",
        str(free_port()),
        "--runtime-cache-port",
        str(free_port()),
        "--schedules-port",
        str(free_port()),
    ]
    log_path = workdir / "vercel-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, with the functions it spawns
        )
    dev = VercelDev(f"127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(dev)
        yield dev
    finally:
        stop_group(process)


def wait_until_ready(dev: VercelDev) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Ready! Available at" not in dev.log():
        if dev.process.poll() is not None:
            raise RuntimeError(f"vercel dev exited with {dev.process.returncode}:\n{dev.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"vercel dev not ready in {START_TIMEOUT_S} s:\n{dev.log()}")
        time.sleep(0.2)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)
    # Function processes it spawned may outlive the CLI itself.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
