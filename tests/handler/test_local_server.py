"""`python -m crev`: start-up and its banner, a request served and logged, refusal of bad
settings, clean stop. How it routes paths is tests/unit/test_server.py's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from crev.server import PROJECT_ROOT
from rig import free_port


def test_invalid_setting_refuses_to_start() -> None:
    env = {**os.environ, "CREV_REPO_PREFIX": "Acme//x"}
    result = subprocess.run(
        [sys.executable, "-m", "crev", "--port", str(free_port())],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "CREV_REPO_PREFIX" in result.stderr
    assert "Traceback" not in result.stderr


def test_serves_prints_pull_line_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREV_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "crev", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = "".join(process.stdout.readline() for _ in range(5))
        assert f"http://127.0.0.1:{port}" in banner
        assert "NAME -> https://registry-1.docker.io/library/NAME for one-component" in banner
        assert f"docker://127.0.0.1:{port}/NAME:TAG" in banner
        response = httpx.get(f"http://127.0.0.1:{port}/v2/_catalog", timeout=5)
        assert response.status_code == 404
        time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert "GET /v2/_catalog 404 upstream=-" in stderr
