"""Pull through `vercel dev --local`: the pinned Vercel CLI builds crev's functions with its own
Python builder (uv, Python 3.12, `vercel-runtime` from PyPI) and serves them, with no Vercel
account and no network beyond the package registries.

Needs `npm install --prefix tests/vercel-cli` (the CLI, pinned by its lock) and `uv`
(requirements-dev.txt). `vercel dev` answers through its Lambda emulation, which buffers each
response whole: fine for the small image pulled here, not a test of streaming (see
test_vercel_runtime.py for that).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import PushedImage, TestRegistry, free_port, skopeo
from tests.support.crev_process import CrevProcess
from tests.support.vercel_build import VERCEL_CLI, build_tools, cli_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
# The first request to each function builds it: uv resolves and installs its dependencies.
BUILD_TIMEOUT_S = 180.0
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
    ".hypothesis",
    "tests",
    "bench",
    ".env*",
)


class VercelDev(CrevProcess):
    """`vercel dev` serving the project: a local server process, like `python -m crev`."""


def _uv() -> str | None:
    beside_python = Path(sys.executable).parent / "uv"
    return str(beside_python) if beside_python.exists() else shutil.which("uv")


def _require_cli() -> None:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not VERCEL_CLI.exists():
        missing.append("the Vercel CLI (npm install --prefix tests/vercel-cli)")
    if _uv() is None:
        missing.append("uv (requirements-dev.txt)")
    if sys.version_info[:2] != (3, 12):
        missing.append("Python 3.12 (.python-version)")
    if not missing:
        return
    reason = f"vercel dev needs {', '.join(missing)}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


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
        _wait_until_ready(dev)
        yield dev
    finally:
        _stop_group(process)


def _wait_until_ready(dev: VercelDev) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while "Ready! Available at" not in dev.log():
        if dev.process.poll() is not None:
            raise RuntimeError(f"vercel dev exited with {dev.process.returncode}:\n{dev.log()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"vercel dev not ready in {START_TIMEOUT_S} s:\n{dev.log()}")
        time.sleep(0.2)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)
    # Function processes it spawned may outlive the CLI itself.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def vercel_dev(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VercelDev]:
    _require_cli()
    with run_vercel_dev(
        tmp_path_factory.mktemp("vercel-dev"),
        registry_host=registry.host,
        registry_scheme="http",
        repo_prefix="acme",
    ) as dev:
        yield dev


def test_vercel_dev_builds_and_serves_both_functions(vercel_dev: VercelDev) -> None:
    with httpx.Client(base_url=vercel_dev.url, timeout=BUILD_TIMEOUT_S) as client:
        challenge = client.get("/v2/")
        assert challenge.status_code == 401, vercel_dev.log()
        # vercel dev itself answered, and told the function the origin the client used.
        assert challenge.headers["server"] == "Vercel"
        assert "x-vercel-id" in challenge.headers
        assert (
            f'realm="http://{vercel_dev.host}/api/token"' in challenge.headers["www-authenticate"]
        )
        token = client.get("/api/token", params={"scope": "repository:tool:pull"})
        assert token.status_code == 200, vercel_dev.log()
        assert token.json()["token"]
    log = vercel_dev.log()
    assert "Built @vercel/python" in log
    assert "api/v2.py" in log and "api/token.py" in log


def test_pull_through_vercel_dev_gives_the_pushed_digest(
    vercel_dev: VercelDev, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    tool = images["tool"]
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        f"docker://{vercel_dev.host}/tool:1",
        f"oci:{tmp_path / 'tool'}:x",
        timeout=BUILD_TIMEOUT_S,
    )
    index = json.loads((tmp_path / "tool" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == tool.digest
    for blob in tool.blobs:
        assert (tmp_path / "tool" / "blobs" / "sha256" / blob.removeprefix("sha256:")).is_file()


def test_the_runtime_tested_is_the_one_the_cli_deploys() -> None:
    _require_cli()
    builder = VERCEL_CLI.parents[1] / "@vercel" / "python" / "dist" / "index.js"
    pinned = re.search(r'VERCEL_RUNTIME_VERSION = "([^"]+)"', builder.read_text())
    assert pinned, builder
    requirements = (PROJECT_ROOT / "requirements-dev.txt").read_text()
    assert f"vercel-runtime=={pinned[1]}\n" in requirements


def test_the_builder_finds_functions_and_dependencies() -> None:
    """The CLI's framework detection takes any `pyproject.toml` for a single Python app and
    then ignores `api/`; its Python builder installs from `pyproject.toml`, not from
    `requirements.txt`, when both exist."""
    assert json.loads((PROJECT_ROOT / "vercel.json").read_text())["framework"] is None
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    requirements = [
        line.strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(pyproject["project"]["dependencies"]) == sorted(requirements)
