"""`python -m crev`: start-up, routing from vercel.json, refusal of bad settings, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from crev.server import PROJECT_ROOT, load_rewrites
from tests.support import free_port


def test_routes_follow_vercel_json(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    for name in ("v2", "token"):
        (tmp_path / "api" / f"{name}.py").write_text(
            (PROJECT_ROOT / "api" / f"{name}.py").read_text()
        )
    (tmp_path / "vercel.json").write_text(
        json.dumps({"rewrites": [{"source": "/registry/:path*", "destination": "/api/v2"}]})
    )
    rewrites = load_rewrites(tmp_path)
    sources = [rewrite.source for rewrite in rewrites]
    # As on Vercel, functions answer at their own paths before any rewrite applies.
    assert sources == ["/api/token", "/api/v2", "/registry/:path*"]
    assert rewrites[2].pattern.fullmatch("/registry/v2/x")
    assert not rewrites[2].pattern.fullmatch("/v2/x")


def test_project_rewrites_send_each_path_to_its_function() -> None:
    rewrites = load_rewrites()

    def function_for(path: str) -> str:
        for rewrite in rewrites:
            if rewrite.pattern.fullmatch(path):
                return rewrite.function.__name__
        return "none"

    for path in ("/v2", "/v2/", "/v2/tool/manifests/1", "/v2/_catalog"):
        assert function_for(path) == "serve_registry", path
    for path in ("/", "/tool", "/team/tool", "/v20", "/v2x/y", "/apix"):
        assert function_for(path) == "serve_page", path
    assert function_for("/api/token") == "serve_token"
    assert function_for("/api/v2") == "serve_registry"


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
