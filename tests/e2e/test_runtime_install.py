"""The README's runtime-only install (Run it outside Vercel), run as written in a clean copy of the
project: it installs `requirements.txt` and nothing of the development tools, and the server it
makes runs. Needs PyPI, as `./scripts/setup` does."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from rig.tools import free_port
from rig.vercel_build import PROJECT_ROOT, clean_copy
from tests.support.readme import section, sh_blocks

SECTION = "Run it outside Vercel"
# What httpx, httpcore and h11 bring, and the venv's own pip.
BROUGHT = {"anyio", "certifi", "idna", "sniffio", "typing_extensions", "pip"}
INSTALL_TIMEOUT_S = 300


def requirement_names() -> set[str]:
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    return {line.split("==")[0].lower() for line in lines if line and not line.startswith("#")}


def test_the_runtime_install_installs_requirements_txt_only_and_serves(tmp_path: Path) -> None:
    (install,) = sh_blocks(section(SECTION))[0].splitlines()
    assert "requirements.txt" in install and "requirements-dev" not in install
    project = clean_copy(tmp_path / "opt-crev")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREV_", "VIRTUAL_ENV"))}
    subprocess.run(
        ["bash", "-euc", install],
        cwd=project,
        env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    python = project / ".venv" / "bin" / "python"
    frozen = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower().replace("-", "_") for line in frozen.splitlines()}
    assert requirement_names() <= installed
    assert installed - requirement_names() <= BROUGHT, installed

    version = subprocess.run(
        [str(python), "-m", "crev", "--version"], cwd=project, capture_output=True, text=True
    )
    assert re.fullmatch(r"crev \d+\.\d+\.\d+\n", version.stdout), version

    port = free_port()
    server = subprocess.Popen(
        [str(python), "-m", "crev", "--port", str(port)],
        cwd=project,
        env={**env, "CREV_PUBLIC": "1"},  # /v2/ is then answered by crev itself
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = None
        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, "crev exited"
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
        assert answer.json() == {}
    finally:
        server.terminate()
        server.wait(15)
