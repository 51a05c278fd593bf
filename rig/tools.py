"""Helpers for the external programs the test harness drives."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

SKOPEO_TIMEOUT_S = 120.0
# The request and status of an access log line in the common log format, as the registry and
# werkzeug (moto_server) write one per request, e.g.
#   127.0.0.1 - - [27/Nov/2026:11:16:43 +0000] "GET /v2/foo/manifests/x HTTP/1.1" 404 91 "" "curl"
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/[0-9.]+" (?P<status>\d{3}) ')


class ToolError(RuntimeError):
    """An external tool exited non-zero; the message carries its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        super().__init__(f"{' '.join(self.argv)} exited {returncode}: {stderr.strip()}")


# The Debian package each program the tests drive comes in: what `.ci/run` installs.
APT_PACKAGES = {
    "busybox": "busybox-static",
    "chromium": "chromium",
    "containerd": "containerd",
    "ctr": "containerd",
    "docker": "docker.io",
    "docker-registry": "docker-registry",
    "dockerd": "docker.io",
    "podman": "podman",
    "skopeo": "skopeo",
}


def require_binaries(*names: str) -> None:
    """Skip the calling test when a program is missing, saying what to install; fail instead
    under CI.

    CI must never silently skip the integration tests because an install
    step went missing, so there a missing binary is an error.
    """
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        skip_or_fail_under_ci(missing_programs(missing))


def missing_programs(names: Sequence[str]) -> str:
    """`chromium not installed: apt-get install chromium (CI installs it)`."""
    packages = dict.fromkeys(APT_PACKAGES[name] for name in names)
    return (
        f"{', '.join(names)} not installed: apt-get install {' '.join(packages)} (CI installs it)"
    )


def skip_or_fail_under_ci(reason: str) -> None:
    """Skip the calling test for want of something on the machine; fail instead under CI, where
    a missing install step must never pass for a green run."""
    import pytest  # imported lazily so the harness also works outside pytest

    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate `process`, and kill it should it still run after `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_tool(
    argv: Sequence[str], timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a program (with `stdin` as its input, else none), raising ToolError (with its
    stderr) on failure."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(argv, -1, _text(exc.stdout), f"timed out after {timeout}s") from exc
    if result.returncode != 0:
        raise ToolError(argv, result.returncode, result.stdout, result.stderr)
    return result


def skopeo(*args: str, timeout: float = SKOPEO_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run skopeo; the signature policy is bypassed since every image here is local test data."""
    return run_tool(["skopeo", "--insecure-policy", *args], timeout)


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port (racy, so callers retry on bind errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def settled_size(path: Path) -> int:
    """File size once it stops growing: a server writes its access line just after the response."""
    size = path.stat().st_size
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        newer = path.stat().st_size
        if newer == size:
            break
        size = newer
    return size


def read_settled(path: Path, offset: int) -> str:
    size = settled_size(path)
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size - offset).decode("utf-8", errors="replace")


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
