"""`python -m crev` as a person meets it: its help, one clear line and exit code 2 for every bad
input, and a banner that says what is served and how to pull."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from crev.server import PROJECT_ROOT
from rig import free_port


def crev(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREV_") and k != "PORT"}
    return subprocess.run(
        [sys.executable, "-m", "crev", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_gives_every_option_its_default_and_lists_the_settings() -> None:
    result = crev("--help")
    assert result.returncode == 0
    assert "--host HOST  address to listen on (default: 127.0.0.1" in result.stdout
    assert "--port PORT  port to listen on (default: $PORT, else 8080)" in result.stdout
    for variable in ("CREV_REGISTRY_HOST", "CREV_REPO_PREFIX", "CREV_ROUTES", "CREV_PUBLIC"):
        assert f"\n  {variable}" in result.stdout, variable
    assert "`" not in result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


@pytest.mark.parametrize("value", ["abc", "-1", "70000", "80.5"])
def test_a_bad_port_in_the_environment_is_one_line(value: str) -> None:
    line = one_line_error(crev(PORT=value))
    assert line == f"crev: PORT={value!r} is not a port number (0-65535)"


def test_a_bad_port_option_is_argparse_s_usage_and_one_line() -> None:
    line = one_line_error(crev("--port", "abc"))
    assert "--port: 'abc' is not a port number" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_a_port_in_use_is_one_line(taken_port: int) -> None:
    line = one_line_error(crev("--port", str(taken_port)))
    assert line == (
        f"crev: cannot listen on 127.0.0.1:{taken_port}: "
        "the address is already in use (is another crev running?)"
    )


def test_a_bad_setting_is_one_line() -> None:
    line = one_line_error(crev(CREV_UPSTREAM_TIMEOUT="soon"))
    assert line.startswith("crev: configuration error: CREV_UPSTREAM_TIMEOUT='soon'")


def banner(*args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREV_") and k != "PORT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crev", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while not lines[-1].lstrip().startswith("docker pull"):
            lines.append(process.stdout.readline())
            assert len(lines) < 20, lines
        return "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


def test_the_banner_shows_docker_hub_s_official_images_and_a_pullable_address() -> None:
    port = free_port()
    shown = banner("--host", "0.0.0.0", "--port", str(port))
    assert f"crev serving on http://0.0.0.0:{port} (every interface)" in shown
    assert "NAME -> https://registry-1.docker.io/library/NAME for one-component names" in shown
    assert f"docker pull 127.0.0.1:{port}/NAME:TAG" in shown
    assert "0.0.0.0:" not in shown.split("\n", 1)[1]
    assert "push: disabled" in shown


def test_the_banner_says_when_push_is_enabled_and_shows_the_prefix() -> None:
    port = free_port()
    shown = banner(
        "--port",
        str(port),
        CREV_REGISTRY_HOST="ghcr.io",
        CREV_REPO_PREFIX="acme",
        CREV_ALLOW_PUSH="1",
        CREV_PUBLIC="1",
    )
    assert "NAME -> https://ghcr.io/acme/NAME  (public)" in shown
    assert "push: enabled (CREV_ALLOW_PUSH=1)" in shown
