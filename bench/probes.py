"""Measuring instruments: a process's CPU and memory, the upstream connections it opens, and
timed requests, blob downloads and `skopeo copy` runs, with the statistics over them."""

from __future__ import annotations

import contextlib
import http.client
import os
import ssl
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import httpx

from rig import skopeo

MiB = 1024 * 1024


def log(message: str) -> None:
    """A progress line on stderr, so that stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile, interpolated between the two nearest ranks."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ------------------------------------------------------------------------------ a process


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_kib(pid: int) -> dict[str, int]:
    """A process's resident memory now (VmRSS) and at its highest (VmHWM), in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class PeriodicSampler:
    """Calls `sample()` every `interval` seconds in a thread while the `with` block runs, and
    once more as it ends, so that what happened last is seen too."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class RssSampler(PeriodicSampler):
    """A process's highest VmRSS while the block runs."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        super().__init__(interval)
        self.pid = pid
        self.peak_kib = 0

    def sample(self) -> None:
        self.peak_kib = max(self.peak_kib, process_memory_kib(self.pid).get("VmRSS", 0))

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


class UpstreamConnectionWatcher(PeriodicSampler):
    """TCP connections a process opens to the upstream's port while the block runs.

    A connection counts once it is seen open in the process (its sockets' inodes) or closed
    (TIME_WAIT on either end, which outlives the connection by a minute, so short-lived ones
    are not missed). `opened` counts those first seen after the start: pooled connections that
    were already open do not count. Meant for phases where only crev talks to the upstream.
    """

    TIME_WAIT = "06"

    def __init__(self, pid: int, port: int, interval: float = 0.01) -> None:
        super().__init__(interval)
        self.pid = pid
        self.port_hex = f"{port:04X}"
        self.seen: set[tuple[str, str]] = set()
        self.baseline: set[tuple[str, str]] = set()

    def __enter__(self) -> Self:
        self.sample()
        self.baseline = set(self.seen)
        return super().__enter__()

    def _inodes(self) -> set[str]:
        inodes = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        return inodes

    def sample(self) -> None:
        inodes = self._inodes()
        port = ":" + self.port_hex
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                lines = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
                for line in lines:
                    fields = line.split()
                    local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                    if remote.endswith(port) and (inode in inodes or state == self.TIME_WAIT):
                        self.seen.add((local, remote))  # crev's end, open or closed by crev
                    elif local.endswith(port) and state == self.TIME_WAIT:
                        self.seen.add((remote, local))  # closed by the upstream

    @property
    def opened(self) -> int:
        return len(self.seen - self.baseline)


# ------------------------------------------------------------------------------- requests


def in_threads(work: Callable[[int], None], count: int) -> None:
    """Run `work(0)` ... `work(count - 1)` each in a thread of its own, until all are done."""
    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def timed_requests(
    client: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str],
    count: int,
    cap_s: float = float("inf"),
) -> list[float]:
    """Latencies in ms of `count` sequential requests on one keep-alive client (fewer if they
    take over `cap_s` seconds, but at least 30)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + cap_s
    for _ in range(count):
        if len(latencies) >= 30 and time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        response = client.request(method, url, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text}")
        latencies.append(elapsed * 1000)
    return latencies


def stream_blob(
    host: str,
    path: str,
    headers: dict[str, str],
    expected: int,
    tls: ssl.SSLContext | None = None,
) -> float:
    """GET a blob with a plain http.client reader (little client overhead), over TLS with
    `tls`; MiB/s."""
    name, port = host.rsplit(":", 1)
    connection = (
        http.client.HTTPSConnection(name, int(port), timeout=60, context=tls)
        if tls is not None
        else http.client.HTTPConnection(name, int(port), timeout=60)
    )
    view = memoryview(bytearray(MiB))
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"blob GET {host}{path} answered {response.status}")
    received = 0
    while count := response.readinto(view):
        received += count
    elapsed = time.perf_counter() - started
    connection.close()
    if received != expected:
        raise RuntimeError(f"blob GET {host}{path}: {received} bytes, expected {expected}")
    return received / MiB / elapsed


def timed_copy(reference: str, destination: Path) -> float:
    """Seconds a `skopeo copy docker://REFERENCE dir:DESTINATION` takes."""
    started = time.perf_counter()
    skopeo(
        "copy", "--quiet", "--src-tls-verify=false", f"docker://{reference}", f"dir:{destination}"
    )
    return time.perf_counter() - started
