"""crev's local server as a real `python -m crev` process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from .registry import TestRegistry
from .tools import free_port, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CrevProcess:
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def crev_environment(**settings: str) -> dict[str, str]:
    """This process's environment with `CREV_<NAME>` settings in place of any it has."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CREV_")}
    env.update({f"CREV_{name.upper()}": value for name, value in settings.items()})
    return env


@contextlib.contextmanager
def run_crev(workdir: Path, *, untouched: bool = False, **settings: str) -> Iterator[CrevProcess]:
    """Run `python -m crev` with `CREV_<NAME>` settings until the block ends.

    `untouched`: ready once its port accepts a connection, so that crev has served nothing
    yet (the usual probe asks `/api/token`, which already teaches crev the upstream's realm).
    """
    port = free_port()
    env = crev_environment(**settings)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"crev-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "crev", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    crev = CrevProcess(f"127.0.0.1:{port}", process, log_path)
    try:
        if untouched:
            _wait_until_listening(crev)
        else:
            _wait_until_serving(crev)
        yield crev
    finally:
        stop_process(process, 5)


def serving_acme(host: str, scheme: str = "http") -> dict[str, str]:
    """crev's settings (for `run_crev`, the Vercel runtimes, `start_crev`) to serve the `acme/`
    namespace of the registry at `host` under the names without `acme/`."""
    return {"registry_host": host, "registry_scheme": scheme, "repo_prefix": "acme"}


def crev_for(
    registry: TestRegistry, workdir: Path, *, untouched: bool = False, **settings: str
) -> contextlib.AbstractContextManager[CrevProcess]:
    """`run_crev` serving the test registry's `acme/` namespace, plus any other settings."""
    return run_crev(
        workdir, untouched=untouched, **serving_acme(registry.host, registry.scheme), **settings
    )


def _wait_until_serving(crev: CrevProcess, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if crev.process.poll() is not None:
            raise RuntimeError(f"crev exited with {crev.process.returncode}:\n{crev.log()}")
        try:
            httpx.get(f"{crev.url}/api/token", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"crev did not start within {timeout} s:\n{crev.log()}")


def _wait_until_listening(crev: CrevProcess, timeout: float = 15.0) -> None:
    host, port = crev.host.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if crev.process.poll() is not None:
            raise RuntimeError(f"crev exited with {crev.process.returncode}:\n{crev.log()}")
        try:
            socket.create_connection((host, int(port)), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"crev did not listen within {timeout} s:\n{crev.log()}")
