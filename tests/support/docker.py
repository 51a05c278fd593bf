"""A private `dockerd` for the tests: its own data root, exec root, socket and containerd
namespace under a tmp path, never the machine's daemon.

`--storage-driver vfs --iptables=false --bridge=none` lets it run in a sandbox without
overlayfs or netfilter; containers run with `--network none`. The client gets a `DOCKER_CONFIG`
of its own, so `docker login` never writes to the user's `~/.docker`. Docker treats registries
on 127.0.0.0/8 as insecure (plain HTTP) by default, as it does for a local crev.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.tools import ToolError, run_tool, stop_process

DOCKER_TIMEOUT_S = 180.0
START_TIMEOUT_S = 60.0


def docker_client() -> str:
    # Debian's docker.io puts the client beside its daemon; another on PATH may be far newer.
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


@dataclass(frozen=True)
class Docker:
    """The docker client for one private daemon, with a config directory of its own."""

    socket: Path
    config: Path

    def run(
        self, *args: str, timeout: float = DOCKER_TIMEOUT_S, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [docker_client(), "--config", str(self.config), "-H", f"unix://{self.socket}"]
        return run_tool([*argv, *args], timeout, stdin)

    def pull(self, reference: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.run("pull", *extra, reference)

    def inspect(self, reference: str) -> dict[str, Any]:
        (inspected,) = json.loads(self.run("image", "inspect", reference).stdout)
        return inspected

    def login(self, host: str, username: str, password: str) -> subprocess.CompletedProcess[str]:
        return self.run("login", "--username", username, "--password-stdin", host, stdin=password)

    def remove_images(self) -> None:
        ids = self.run("image", "ls", "--all", "--quiet").stdout.split()
        if ids:
            self.run("image", "rm", "--force", *sorted(set(ids)))


@contextlib.contextmanager
def run_dockerd(workdir: Path) -> Iterator[Docker]:
    """Start a private dockerd under `workdir` and stop it (and its containerd) at the end."""
    workdir.mkdir(parents=True, exist_ok=True)
    # Unix socket paths are limited to about 108 bytes; pytest's tmp paths can be longer.
    short = Path(tempfile.mkdtemp(prefix="dk-"))
    socket = short / "docker.sock"
    # containerd namespaces are alphanumeric words joined by single `.`, `_` or `-`; a temp
    # directory's random name may hold `-_` or a leading `_`.
    namespace = "crevtest" + re.sub(r"[^A-Za-z0-9]", "", short.name)
    config = workdir / "config"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text("{}")
    # Settings of its own, so the machine's /etc/docker/daemon.json never applies.
    (workdir / "daemon.json").write_text("{}")
    log = (workdir / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [
            "dockerd",
            "--config-file",
            str(workdir / "daemon.json"),
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--bridge=none",
            "--data-root",
            str(workdir / "data"),
            "--exec-root",
            str(short / "exec"),
            "--pidfile",
            str(short / "dockerd.pid"),
            "--host",
            f"unix://{socket}",
            "--containerd-namespace",
            namespace,
            "--containerd-plugins-namespace",
            f"{namespace}plugins",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    docker = Docker(socket, config)
    try:
        _wait_until_serving(docker, daemon, workdir / "dockerd.log")
        yield docker
    finally:
        children = _children(daemon.pid)
        stop_process(daemon, 30)
        for pid in children:  # the containerd it started, should it outlive dockerd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        log.close()
        shutil.rmtree(short, ignore_errors=True)


def _children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(status.parent.name))
    return found


def _wait_until_serving(docker: Docker, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"dockerd exited {daemon.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(ToolError, subprocess.TimeoutExpired):
            docker.run("version", timeout=10)
            return
        time.sleep(0.2)
    raise RuntimeError(f"dockerd did not start in {START_TIMEOUT_S:g} s: {log.read_text()[-2000:]}")
