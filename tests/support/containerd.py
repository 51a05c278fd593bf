"""A private containerd daemon (root, state and socket of its own) driven with `ctr`.

`ctr images pull` resolves and fetches in the `ctr` process (auth included), but writes content
and unpacks through the daemon, so a daemon has to run. Only what a pull needs is enabled: the
CRI plugin and every snapshotter but ``native`` (which needs no kernel feature beyond bind
mounts) are disabled, and nothing listens on TCP.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.tools import run_tool, stop_process

CTR_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 20.0
SNAPSHOTTER = "native"
NAMESPACE = "crev-test"

_DISABLED_PLUGINS = [
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.overlayfs",
    "io.containerd.snapshotter.v1.zfs",
]


def _config(root: Path, state: Path, socket_dir: Path) -> str:
    disabled = ", ".join(f'"{name}"' for name in _DISABLED_PLUGINS)
    return "\n".join(
        [
            "version = 2",
            f'root = "{root}"',
            f'state = "{state}"',
            f"disabled_plugins = [{disabled}]",
            "[grpc]",
            f'  address = "{socket_dir / "containerd.sock"}"',
            "[ttrpc]",
            f'  address = "{socket_dir / "containerd-ttrpc.sock"}"',
            "[debug]",
            '  address = ""',
            "[metrics]",
            '  address = ""',
            "",
        ]
    )


@dataclass
class Containerd:
    address: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def ctr(self, *args: str, timeout: float = CTR_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return run_tool(
            ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args], timeout
        )

    def pull(self, reference: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """``ctr images pull`` over plain http, unpacked with the native snapshotter."""
        return self.ctr(
            "images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, *extra, reference
        )

    def images(self) -> dict[str, str]:
        """Image name to target digest, from ``ctr images ls``."""
        listed = self.ctr("images", "ls").stdout.splitlines()
        header, rows = listed[0].split(), [line.split() for line in listed[1:] if line.strip()]
        ref, digest = header.index("REF"), header.index("DIGEST")
        return {row[ref]: row[digest] for row in rows}

    def content(self) -> set[str]:
        """Digests of every blob in the content store, from ``ctr content ls``."""
        listed = self.ctr("content", "ls", "--quiet").stdout.split()
        return set(listed)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_containerd(workdir: Path) -> Iterator[Containerd]:
    """Start containerd with everything under ``workdir`` (its socket in a short temp dir)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # A unix socket path is limited to 108 bytes; pytest's tmp paths can be longer.
    socket_dir = Path(tempfile.mkdtemp(prefix="ctd-"))
    config = workdir / "config.toml"
    config.write_text(_config(workdir / "root", workdir / "state", socket_dir))
    log_path = workdir / "containerd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["containerd", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    daemon = Containerd(str(socket_dir / "containerd.sock"), workdir, process, log_path)
    try:
        _wait_until_serving(daemon)
        yield daemon
    finally:
        stop_process(process, 10)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _wait_until_serving(daemon: Containerd) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(
                f"containerd exited with {daemon.process.returncode}:\n{daemon.log()}"
            )
        if Path(daemon.address).exists():
            result = subprocess.run(
                ["ctr", "--address", daemon.address, "version"],
                capture_output=True,
                text=True,
                timeout=10,
                stdin=subprocess.DEVNULL,
            )
            if result.returncode == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"containerd did not start within {READY_TIMEOUT_S} s:\n{daemon.log()}")
