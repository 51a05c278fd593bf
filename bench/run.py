"""crev benchmark: the real test registry, straight and through `python -m crev`, in one run.

    .venv/bin/python bench/run.py            # full run (a few minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # short run (under a minute)

Prints one table (direct vs crev, medians over rounds, ratio, goal, pass/miss) and writes the
same figures as JSON (`--json`, default `bench/results/latest.json`). With py-spy installed the
full run also profiles crev under warm manifest load (`bench/results/profile.svg`) and prints
where crev's CPU time goes, and the import breakdown of a cold start. Nothing here fails on a
missed goal: it is a report.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.support import (  # noqa: E402
    TestRegistry,
    free_port,
    push_large_image,
    push_small_image,
    skopeo,
    start_test_registry,
)
from tests.support.crev_process import CrevProcess, crev_for  # noqa: E402
from tests.support.images import (  # noqa: E402
    MANIFEST_ACCEPT,
    layout_dir,
    make_image_config,
    make_layer,
    make_manifest,
    skopeo_push,
    write_oci_layout,
)

MiB = 1024 * 1024
PREFIX = "acme"
# `random.randbytes(n)` overflows at n = 256 MiB exactly (n * 8 bits > INT_MAX), so the layer's
# data is one byte short; tar headers and gzip framing still make the blob itself over 256 MiB.
BLOB_DATA_SIZE = 256 * MiB - 1
# Layer data sizes of the multi-layer image `skopeo copy` pulls (about 15 MiB in 6 layers).
COPY_LAYER_SIZES = (8 * MiB, 4 * MiB, 2 * MiB, 1 * MiB, 256 * 1024, 16 * 1024)
CONCURRENCY = 16
GOAL_ADDED_MS = 1.0
GOAL_BLOB_RATIO = 0.80
GOAL_RSS_MIB = 64.0
GOAL_COPY_RATIO = 1.10
GOAL_COLD_MS = 150.0


@dataclass(frozen=True)
class Plan:
    rounds: int  # rounds of the warm manifest measurements
    sequential: int  # requests per side per round, sequential...
    sequential_cap_s: float  # ...or as many as fit in this many seconds, if fewer
    concurrent_rounds: int
    concurrent: int  # requests per side per round, over CONCURRENCY clients
    blob_rounds: int
    copy_rounds: int
    cold_spawns: int
    importtime_runs: int
    profile_seconds: float


FULL = Plan(
    rounds=5,
    sequential=500,
    sequential_cap_s=4.0,
    concurrent_rounds=3,
    concurrent=2000,
    blob_rounds=3,
    copy_rounds=7,
    cold_spawns=10,
    importtime_runs=5,
    profile_seconds=12.0,
)
QUICK = Plan(
    rounds=3,
    sequential=100,
    sequential_cap_s=1.5,
    concurrent_rounds=2,
    concurrent=320,
    blob_rounds=1,
    copy_rounds=2,
    cold_spawns=3,
    importtime_runs=2,
    profile_seconds=0.0,
)


# ----------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def side_order(round_index: int) -> tuple[str, str]:
    """Alternate which side goes first, so drift (caches, CPU clocks) hits both alike."""
    return ("direct", "crev") if round_index % 2 == 0 else ("crev", "direct")


@dataclass
class Target:
    """One side of the comparison: where to send requests and how names look there."""

    side: str
    base_url: str
    host: str
    name_prefix: str  # "acme/" direct, "" through crev

    def url(self, path: str) -> str:
        return self.base_url + path

    def name(self, vanity: str) -> str:
        return self.name_prefix + vanity


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


class RssSampler:
    """Samples a process's VmRSS in a thread; `peak_mib` is the highest sample."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, process_memory_kib(self.pid).get("VmRSS", 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, process_memory_kib(self.pid).get("VmRSS", 0))

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


class UpstreamConnectionWatcher:
    """TCP connections a process opens to the upstream's port, sampled from /proc in a thread.

    A connection counts once it is seen open in the process (its sockets' inodes) or closed
    (TIME_WAIT on either end, which outlives the connection by a minute, so short-lived ones
    are not missed). `opened` counts those first seen after the start: pooled connections that
    were already open do not count. Meant for phases where only crev talks to the upstream.
    """

    TIME_WAIT = "06"

    def __init__(self, pid: int, port: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.port_hex = f"{port:04X}"
        self.interval = interval
        self.seen: set[tuple[str, str]] = set()
        self.baseline: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

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

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> UpstreamConnectionWatcher:
        self.sample()
        self.baseline = set(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def opened(self) -> int:
        return len(self.seen - self.baseline)


# ------------------------------------------------------------------------------ images


def push_copy_image(registry: TestRegistry, name: str = "acme/layers", tag: str = "1") -> str:
    """A multi-layer image of incompressible data (gzip level 0, so it builds fast)."""
    rng = random.Random(7)
    built = [
        make_layer({f"data/layer-{i}.bin": rng.randbytes(size)}, compresslevel=0)
        for i, size in enumerate(COPY_LAYER_SIZES)
    ]
    layers = [blob for blob, _ in built]
    config = make_image_config([diff for _, diff in built], label=f"{name}:{tag}")
    manifest = make_manifest(config, layers)
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, manifest, [config, *layers])
    skopeo_push(registry, layout, tag, name, tag)
    return name.removeprefix(f"{PREFIX}/")


# ------------------------------------------------------------------- warm manifest latency


def manifest_headers(registry: TestRegistry) -> dict[str, str]:
    token = registry.token(f"repository:{PREFIX}/tool:pull")
    return {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}


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


def bench_warm_manifest(
    registry: TestRegistry, targets: dict[str, Target], crev: CrevProcess, plan: Plan
) -> dict[str, Any]:
    headers = manifest_headers(registry)
    clients = {side: httpx.Client(timeout=30) for side in targets}
    urls = {side: t.url(f"/v2/{t.name('tool')}/manifests/1") for side, t in targets.items()}
    results: dict[str, Any] = {}
    cpu_seconds = 0.0
    cpu_requests = 0
    try:
        for side in targets:  # warm up: connections, crev's upstream pool, registry caches
            timed_requests(clients[side], "GET", urls[side], headers, 50)
        for method in ("HEAD", "GET"):
            rounds: dict[str, list[dict[str, float]]] = {side: [] for side in targets}
            for index in range(plan.rounds):
                for side in side_order(index):
                    before = process_cpu_seconds(crev.process.pid) if side == "crev" else 0.0
                    latencies = timed_requests(
                        clients[side],
                        method,
                        urls[side],
                        headers,
                        plan.sequential,
                        plan.sequential_cap_s,
                    )
                    if side == "crev":
                        cpu_seconds += process_cpu_seconds(crev.process.pid) - before
                        cpu_requests += len(latencies)
                    rounds[side].append(
                        {
                            "requests": len(latencies),
                            "p50": percentile(latencies, 50),
                            "p99": percentile(latencies, 99),
                            "mean": statistics.fmean(latencies),
                        }
                    )
            added = [
                c["p50"] - d["p50"] for c, d in zip(rounds["crev"], rounds["direct"], strict=True)
            ]
            results[method] = {
                side: {
                    "p50_ms": median([r["p50"] for r in rounds[side]]),
                    "p99_ms": median([r["p99"] for r in rounds[side]]),
                    "rounds": rounds[side],
                }
                for side in targets
            }
            results[method]["added_p50_ms"] = median(added)
            log(
                f"warm {method}: direct p50 {results[method]['direct']['p50_ms']:.2f} ms, "
                f"crev p50 {results[method]['crev']['p50_ms']:.2f} ms"
            )
    finally:
        for client in clients.values():
            client.close()
    results["crev_cpu_ms_per_request"] = cpu_seconds * 1000 / cpu_requests
    return results


def bench_concurrent(
    registry: TestRegistry, targets: dict[str, Target], plan: Plan
) -> dict[str, Any]:
    headers = manifest_headers(registry)

    def run(target: Target) -> float:
        url = target.url(f"/v2/{target.name('tool')}/manifests/1")
        per_client = plan.concurrent // CONCURRENCY
        clients = [httpx.Client(timeout=30) for _ in range(CONCURRENCY)]
        errors: list[str] = []
        barrier = threading.Barrier(CONCURRENCY + 1)

        def worker(client: httpx.Client) -> None:
            client.get(url, headers=headers)  # open the connection before the clock starts
            barrier.wait()
            for _ in range(per_client):
                response = client.get(url, headers=headers)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    return

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        for client in clients:
            client.close()
        if errors:
            raise RuntimeError(f"{target.side}: {errors[0]}")
        return per_client * CONCURRENCY / elapsed

    rounds: dict[str, list[float]] = {side: [] for side in targets}
    for index in range(plan.concurrent_rounds):
        for side in side_order(index):
            rounds[side].append(run(targets[side]))
    result = {side: {"rps": median(rounds[side]), "rounds": rounds[side]} for side in targets}
    log(f"concurrent: direct {result['direct']['rps']:.0f} rps, crev {result['crev']['rps']:.0f}")
    return result


def bench_connection_reuse(
    registry: TestRegistry,
    targets: dict[str, Target],
    crev: CrevProcess,
    plan: Plan,
) -> dict[str, Any]:
    """How many upstream connections crev opens for sequential and for concurrent requests."""
    headers = manifest_headers(registry)
    target = targets["crev"]
    url = target.url(f"/v2/{target.name('tool')}/manifests/1")
    port = int(registry.host.rsplit(":", 1)[1])
    sequential = min(plan.sequential, 300)
    with UpstreamConnectionWatcher(crev.process.pid, port) as seq_watch, httpx.Client() as client:
        timed_requests(client, "HEAD", url, headers, sequential)
    concurrent = CONCURRENCY * 20
    with UpstreamConnectionWatcher(crev.process.pid, port) as conc_watch:

        def worker() -> None:
            with httpx.Client() as own:
                timed_requests(own, "GET", url, headers, concurrent // CONCURRENCY)

        threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return {
        "sequential_requests": sequential,
        "sequential_new_connections": seq_watch.opened,
        "concurrent_requests": concurrent,
        "concurrent_new_connections": conc_watch.opened,
        "pooled_before": len(seq_watch.baseline),
    }


# ------------------------------------------------------------------------ blob streaming


def stream_blob(target: Target, path: str, headers: dict[str, str], expected: int) -> float:
    """GET a blob with a plain http.client reader (little client overhead); MiB/s."""
    host, port = target.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{target.side} blob GET answered {response.status}")
    received = 0
    while True:
        count = response.readinto(view)
        if not count:
            break
        received += count
    elapsed = time.perf_counter() - started
    connection.close()
    if received != expected:
        raise RuntimeError(f"{target.side} blob: {received} bytes, expected {expected}")
    return received / MiB / elapsed


def bench_blob(
    registry: TestRegistry,
    targets: dict[str, Target],
    crev: CrevProcess,
    digest: str,
    size: int,
    plan: Plan,
) -> dict[str, Any]:
    token = registry.token(f"repository:{PREFIX}/big:pull")
    headers = {"Authorization": f"Bearer {token}"}
    rounds: dict[str, list[float]] = {side: [] for side in targets}
    rss_before = process_memory_kib(crev.process.pid)
    peaks = []
    for index in range(plan.blob_rounds):
        for side in side_order(index):
            target = targets[side]
            path = f"/v2/{target.name('big')}/blobs/{digest}"
            if side == "crev":
                with RssSampler(crev.process.pid) as sampler:
                    rounds[side].append(stream_blob(target, path, headers, size))
                peaks.append(sampler.peak_mib)
            else:
                rounds[side].append(stream_blob(target, path, headers, size))
    rss_after = process_memory_kib(crev.process.pid)
    result: dict[str, Any] = {
        side: {"mib_per_s": median(rounds[side]), "rounds": rounds[side]} for side in targets
    }
    result.update(
        blob_bytes=size,
        crev_peak_rss_mib=max(peaks),
        crev_rss_before_mib=rss_before["VmRSS"] / 1024,
        crev_vmhwm_mib=rss_after["VmHWM"] / 1024,
    )
    log(
        f"blob: direct {result['direct']['mib_per_s']:.0f} MiB/s, crev "
        f"{result['crev']['mib_per_s']:.0f} MiB/s, crev peak RSS {max(peaks):.1f} MiB"
    )
    return result


# ---------------------------------------------------------------------------- skopeo copy


def skopeo_copy(target: Target, name: str, destination: Path) -> float:
    started = time.perf_counter()
    skopeo(
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        f"docker://{target.host}/{target.name(name)}:1",
        f"dir:{destination}",
    )
    return time.perf_counter() - started


def bench_copy(targets: dict[str, Target], name: str, plan: Plan, workdir: Path) -> dict[str, Any]:
    rounds: dict[str, list[float]] = {side: [] for side in targets}
    for index in range(-1, plan.copy_rounds):  # round -1 warms up both sides, not counted
        for side in side_order(index):
            destination = Path(tempfile.mkdtemp(prefix=f"copy-{side}-", dir=workdir))
            seconds = skopeo_copy(targets[side], name, destination)
            shutil.rmtree(destination)
            if index >= 0:
                rounds[side].append(seconds)
    result = {side: {"seconds": median(rounds[side]), "rounds": rounds[side]} for side in targets}
    log(f"copy: direct {result['direct']['seconds']:.3f} s, crev {result['crev']['seconds']:.3f} s")
    return result


def count_upstream_requests(
    registry: TestRegistry, target: Target, name: str, workdir: Path
) -> dict[str, Any]:
    registry.clear_logs()
    destination = Path(tempfile.mkdtemp(prefix=f"count-{target.side}-", dir=workdir))
    skopeo_copy(target, name, destination)
    shutil.rmtree(destination)
    access = registry.access_log_records()
    issued = registry.issuer.requests()
    return {
        "registry": len(access),
        "issuer": len(issued),
        "total": len(access) + len(issued),
        "registry_requests": [f"{r.method} {r.path} {r.status}" for r in access],
        "issuer_requests": [f"{r.method} {r.path} {r.status} {r.scopes}" for r in issued],
    }


def bench_upstream_requests(
    registry: TestRegistry, targets: dict[str, Target], name: str, workdir: Path
) -> dict[str, Any]:
    return {
        side: count_upstream_requests(registry, t, name, workdir) for side, t in targets.items()
    }


@contextlib.contextmanager
def untouched_crev(registry: TestRegistry, workdir: Path) -> Iterator[Target]:
    """`python -m crev` that has served nothing yet: ready once its port accepts a connection
    (`crev_for` asks `/api/token` to see it is up, which already teaches crev the realm)."""
    port = free_port()
    env = crev_env(registry, None)
    with (workdir / f"crev-fresh-{port}.log").open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "crev", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"crev did not start on port {port}")
            time.sleep(0.02)
        yield Target("crev", f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", "")
    finally:
        process.terminate()
        process.wait(10)


# ------------------------------------------------------------------------------ cold start

# What Vercel's Python runtime does: load the function file by path and serve its `handler`.
# BENCH_PRELOAD names modules imported before the clock starts for the import; after the first
# answer the driver prints which installed packages it loaded.
COLD_DRIVER = """
import time
started = time.perf_counter()
import os
import sys
for name in filter(None, os.environ.get("BENCH_PRELOAD", "").split(",")):
    __import__(name)
preloaded = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("vercel_function", "api/v2.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter()
from http.server import HTTPServer
server = HTTPServer(("127.0.0.1", 0), module.handler)
print(server.server_address[1], (imported - preloaded) * 1000, flush=True)
server.handle_request()
files = (getattr(m, "__file__", None) or "" for m in list(sys.modules.values()))
print(" ".join(sorted({f.split("site-packages/")[1].split("/")[0] for f in files
                       if "site-packages/" in f})), flush=True)
"""

IMPORTTIME_DRIVER = """
import importlib.util
import sys
sys.stderr.write("-- api/v2.py --\\n")
spec = importlib.util.spec_from_file_location("vercel_function", "api/v2.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

# What Vercel's runtime (vercel_runtime/vc_init.py) has imported before it loads the function.
RUNTIME_PRELOAD = (
    "atexit,base64,contextlib,contextvars,functools,http,http.client,http.server,json,logging,"
    "socket,threading,time,traceback,typing"
)


@dataclass(frozen=True)
class ColdVariant:
    name: str
    label: str
    vendor: bool  # installed packages copied without .pyc, ahead of site-packages
    pycache: bool  # every module's .pyc cached (in a prefix directory)
    preload: str = ""


COLD_VARIANTS = (
    # Vercel installs packages with `--no-compile` and compiles nothing unless the project sets
    # VERCEL_PYTHON_COMPILEALL=1: crev and httpx are compiled from source at every cold start.
    ColdVariant("deployed", "as deployed (no .pyc for crev or its packages)", True, False),
    ColdVariant("precompiled", "precompiled (VERCEL_PYTHON_COMPILEALL=1)", False, True),
    ColdVariant(
        "runtime", "precompiled, after the runtime's imports", False, True, RUNTIME_PRELOAD
    ),
)


def crev_env(registry: TestRegistry, pycache: Path | None = None) -> dict[str, str]:
    """crev's settings; with `pycache`, every module's .pyc is written and read there, without
    it nothing is written (installed packages keep the .pyc pip wrote in site-packages)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CREV_", "BENCH_"))
        and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPATH")
    }
    env.update(
        CREV_REGISTRY_HOST=registry.host,
        CREV_REGISTRY_SCHEME=registry.scheme,
        CREV_REPO_PREFIX=PREFIX,
    )
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def variant_env(
    registry: TestRegistry, variant: ColdVariant, workdir: Path, packages: list[str]
) -> dict[str, str]:
    env = crev_env(registry, workdir / "pycache" if variant.pycache else None)
    if variant.vendor:
        vendor = workdir / "vendor"
        if not vendor.exists():
            copy_without_bytecode(packages, vendor)
        env["PYTHONPATH"] = str(vendor)
    if variant.preload:
        env["BENCH_PRELOAD"] = variant.preload
    return env


def copy_without_bytecode(packages: list[str], destination: Path) -> None:
    """Copy installed top-level packages (as the cold-start driver named them) minus .pyc."""
    site = Path(httpx.__file__).resolve().parent.parent
    destination.mkdir(parents=True)
    for name in packages:
        source = site / name
        if source.is_dir() and not name.endswith(".dist-info"):
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("*.pyc"))
        elif source.is_file():
            shutil.copy2(source, destination / name)


def cold_start_once(env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", COLD_DRIVER],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"cold-start driver failed: {process.communicate()[1]}")
        listening = time.perf_counter()
        port, import_ms = line.split()
        connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        connection.request("GET", "/v2/", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        answered = time.perf_counter()
        connection.close()
        if response.status != 401:
            raise RuntimeError(f"cold start: /v2/ answered {response.status}, expected 401")
        packages = process.stdout.readline().split()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "first_answer_ms": (answered - started) * 1000,
        "listening_ms": (listening - started) * 1000,
        "import_ms": float(import_ms),
        "packages": packages,
    }


def bare_python_ms(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], cwd=ROOT, env=env, check=True)
    return (time.perf_counter() - started) * 1000


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """`-X importtime` lines after the marker, each with its parent (lines come children first)."""
    lines = stderr.split("-- api/v2.py --\n", 1)[-1].splitlines()
    entries: list[dict[str, Any]] = []
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
    for line in lines:
        match = pattern.match(line)
        if not match:
            continue
        depth = len(match[3]) // 2
        entry = {
            "name": match[4],
            "self_us": int(match[1]),
            "cum_us": int(match[2]),
            "depth": depth,
        }
        for child in pending.pop(depth + 1, []):
            child["parent"] = entry["name"]
        pending[depth].append(entry)
        entries.append(entry)
    return entries


def importtime_breakdown(env: dict[str, str], runs: int) -> dict[str, Any]:
    """Median over runs of: total, self time by top-level package, what crev's modules import."""
    totals: list[float] = []
    by_package: dict[str, list[float]] = defaultdict(list)
    pulled_in: dict[str, list[float]] = defaultdict(list)
    by_module: dict[str, list[float]] = defaultdict(list)
    importer: dict[str, str] = {}
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", IMPORTTIME_DRIVER],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        entries = parse_importtime(result.stderr)
        totals.append(sum(e["cum_us"] for e in entries if e["depth"] == 0) / 1000)
        packages: Counter[str] = Counter()
        for entry in entries:
            packages[entry["name"].split(".")[0]] += entry["self_us"]
        for package, micros in packages.items():
            by_package[package].append(micros / 1000)
        for entry in entries:
            by_module[entry["name"]].append(entry["self_us"] / 1000)
            parent = entry.get("parent", "")
            if parent.startswith("crev") and not entry["name"].startswith("crev"):
                pulled_in[entry["name"]].append(entry["cum_us"] / 1000)
                importer[entry["name"]] = parent
    package_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in by_package.items()}
    pulled_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in pulled_in.items()}
    module_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in by_module.items()}
    crev_self = sum(ms for name, ms in module_ms.items() if name.split(".")[0] == "crev")
    return {
        "total_ms": median(totals),
        "self_ms_by_package": dict(sorted(package_ms.items(), key=lambda kv: -kv[1])),
        "crev_self_ms": crev_self,
        "self_ms_by_module": dict(sorted(module_ms.items(), key=lambda kv: -kv[1])[:20]),
        "imported_by_crev_ms": {
            name: {"cum_ms": ms, "imported_by": importer[name]}
            for name, ms in sorted(pulled_ms.items(), key=lambda kv: -kv[1])
        },
    }


def bench_cold_start(registry: TestRegistry, plan: Plan, workdir: Path) -> dict[str, Any]:
    # A first spawn warms the page cache and names the installed packages crev loads.
    packages = cold_start_once(crev_env(registry))["packages"]
    envs = {v.name: variant_env(registry, v, workdir, packages) for v in COLD_VARIANTS}
    for env in envs.values():
        cold_start_once(env)  # warm up; precompiled writes every .pyc here
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in COLD_VARIANTS}
    for _ in range(plan.cold_spawns):  # interleaved, so load spikes hit every variant alike
        for variant in COLD_VARIANTS:
            runs[variant.name].append(cold_start_once(envs[variant.name]))
    result: dict[str, Any] = {"packages": packages}
    for variant in COLD_VARIANTS:
        result[variant.name] = {
            "label": variant.label,
            **{
                key: median([run[key] for run in runs[variant.name]])
                for key in ("first_answer_ms", "listening_ms", "import_ms")
            },
            "rounds": [
                {k: v for k, v in run.items() if k != "packages"} for run in runs[variant.name]
            ],
        }
    bare_env = crev_env(registry)
    result["bare_python_ms"] = median([bare_python_ms(bare_env) for _ in range(plan.cold_spawns)])
    result["importtime"] = importtime_breakdown(envs["deployed"], plan.importtime_runs)
    log(
        "cold start: first answer "
        + ", ".join(f"{v.name} {result[v.name]['first_answer_ms']:.0f} ms" for v in COLD_VARIANTS)
        + f"; bare python {result['bare_python_ms']:.0f} ms"
    )
    return result


# ------------------------------------------------------------------------------- profile


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def drive_manifest_load(url: str, headers: dict[str, str], until: Callable[[], bool]) -> int:
    """Warm manifest GETs from CONCURRENCY keep-alive clients until `until()`; requests sent."""
    counts = [0] * CONCURRENCY

    def worker(slot: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not until():
                client.get(url, headers=headers)
                counts[slot] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(counts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def py_spy_record(
    py_spy: str,
    pid: int,
    seconds: float,
    output: Path,
    fmt: str,
    load: Callable[[Callable[[], bool]], int],
) -> int:
    """Record crev while `load` runs (until py-spy is done); returns what `load` counted."""
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1))]
    # Non-blocking: pausing crev's many threads at every sample would slow it down tenfold.
    argv += ["--rate", "250", "--format", fmt, "--output", str(output), "--nonblocking"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let py-spy attach before the load starts
    done = load(lambda: process.poll() is not None)
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed: {stderr.strip()}")
    return done


FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Helpers whose time belongs to whoever called them (httpcore's exception mapping, mostly).
GENERIC = frozenset(
    {"contextlib", "threading", "functools", "typing", "enum", "abc", "re", "weakref", "<frozen"}
)
COMPONENTS = {
    "crev": "crev",
    "httpx": "httpx/httpcore/h11",
    "httpcore": "httpx/httpcore/h11",
    "h11": "httpx/httpcore/h11",
    "http": "http.server/socketserver/email",
    "socketserver": "http.server/socketserver/email",
    "email": "http.server/socketserver/email",
    "logging": "logging",
    "socket": "socket/selectors",
    "selectors": "socket/selectors",
    "ssl": "socket/selectors",
}


def frame_top(path: str) -> str:
    """`httpcore/_sync/http11.py` -> `httpcore`, `socket.py` -> `socket`, `<frozen os>` ..."""
    if "/crev/" in path:
        return "crev"
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path.split("/", 1)[0].split(" ", 1)[0].removesuffix(".py")


# Leaf frames of a thread blocked on a socket (recv, select) or a lock; with small messages,
# as for manifests, that is waiting (for the next request, the upstream, the pool), not work.
WAITS = frozenset(
    {
        "ThreadLock.__enter__ (httpcore/_synchronization.py)",
        "Condition.wait (threading.py)",
        "SocketIO.readinto (socket.py)",
        "SyncStream.read (httpcore/_backends/sync.py)",
        "_PollLikeSelector.select (selectors.py)",
        "PollSelector.select (selectors.py)",
        "EpollSelector.select (selectors.py)",
    }
)


def analyse_profile(raw: Path, units: int, *, drop_waits: bool = False) -> dict[str, Any]:
    """Shares of py-spy's samples: per function (self, inclusive), per component."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    crev_inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    waits: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for frame in stack.split(";"):
            match = FRAME.match(frame)
            if match is None:  # the thread name py-spy puts first
                continue
            short = match["file"].split("site-packages/")[-1]
            frames.append((f"{match['function']} ({short})", frame_top(match["file"])))
        if not frames:
            continue
        if drop_waits and frames[-1][0] in WAITS:
            waits[frames[-1][0]] += count
            continue
        total += count
        self_counts[frames[-1][0]] += count
        owner = next((top for _, top in reversed(frames) if top not in GENERIC), frames[-1][1])
        components[COMPONENTS.get(owner, "other")] += count
        for name in {name for name, _ in frames}:
            inclusive[name] += count
        for name in {name for name, top in frames if top == "crev"}:
            crev_inclusive[name] += count

    def share(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "percent": 100 * n / total} for name, n in counter.most_common(limit)
        ]

    return {
        "samples": total,
        "wait_samples_dropped": dict(waits.most_common()),
        "units": units,
        "components": share(components, 10),
        "self": share(self_counts, 15),
        "inclusive": share(inclusive, 30),
        "crev_inclusive": share(crev_inclusive, 15),
    }


def bench_profile(
    registry: TestRegistry,
    targets: dict[str, Target],
    crev: CrevProcess,
    blob: tuple[str, int],
    plan: Plan,
    results_dir: Path,
) -> dict[str, Any]:
    """py-spy on crev under warm manifest GETs (socket waits dropped: where its CPU goes) and
    while streaming the blob (every sample: the thread is the bottleneck either way)."""
    py_spy = find_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy not installed (pip install -r requirements-dev.txt)"}
    headers = manifest_headers(registry)
    target = targets["crev"]
    url = target.url(f"/v2/{target.name('tool')}/manifests/1")
    pid = crev.process.pid
    window = max(plan.profile_seconds / 3, 2)

    def manifest_load(until: Callable[[], bool]) -> int:
        return drive_manifest_load(url, headers, until)

    def blob_load(until: Callable[[], bool]) -> int:
        blob_headers = {
            "Authorization": f"Bearer {registry.token(f'repository:{PREFIX}/big:pull')}"
        }
        path = f"/v2/{target.name('big')}/blobs/{blob[0]}"
        streamed = 0
        while not until():
            stream_blob(target, path, blob_headers, blob[1])
            streamed += blob[1] // MiB
        return streamed

    files = {
        "manifest": results_dir / "profile-manifest.txt",
        "flamegraph": results_dir / "profile.svg",
        "blob": results_dir / "profile-blob.txt",
    }
    requests = py_spy_record(py_spy, pid, window, files["manifest"], "raw", manifest_load)
    py_spy_record(py_spy, pid, window, files["flamegraph"], "flamegraph", manifest_load)
    mib = py_spy_record(py_spy, pid, window, files["blob"], "raw", blob_load)
    result = {
        "manifest": analyse_profile(files["manifest"], requests, drop_waits=True),
        "blob": analyse_profile(files["blob"], mib),
        "files": {key: os.path.relpath(path, ROOT) for key, path in files.items()},
    }
    log(
        f"profile: {result['manifest']['samples']} samples over {requests} manifest GETs, "
        f"{result['blob']['samples']} over {mib} MiB of blob"
    )
    return result


# --------------------------------------------------------------------------------- report


@dataclass
class Row:
    metric: str
    direct: str = ""
    crev: str = ""
    ratio: str = ""
    goal: str = ""
    result: str = ""


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def build_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    warm = results.get("warm_manifest")
    if warm:
        for method in ("HEAD", "GET"):
            sides = warm[method]
            direct, crev = sides["direct"], sides["crev"]
            for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
                rows.append(
                    Row(
                        f"warm {method} manifest {label} (ms)",
                        fmt(direct[key]),
                        fmt(crev[key]),
                        fmt(crev[key] / direct[key]) + "x",
                    )
                )
            added = sides["added_p50_ms"]
            rows.append(
                Row(
                    f"warm {method} manifest added at p50 (ms)",
                    crev=f"+{fmt(added)}",
                    goal=f"<= +{GOAL_ADDED_MS:g} ms",
                    result=verdict(added <= GOAL_ADDED_MS),
                )
            )
        rows.append(
            Row(
                "crev CPU per warm manifest request (ms)", crev=fmt(warm["crev_cpu_ms_per_request"])
            )
        )
    concurrent = results.get("concurrent")
    if concurrent:
        d, c = concurrent["direct"]["rps"], concurrent["crev"]["rps"]
        rows.append(
            Row(
                f"manifest GET req/s, {CONCURRENCY} clients", fmt(d, 0), fmt(c, 0), fmt(c / d) + "x"
            )
        )
    reuse = results.get("connection_reuse")
    if reuse:
        seq, conc = reuse["sequential_new_connections"], reuse["concurrent_new_connections"]
        rows.append(
            Row(
                "new upstream conns, warm crev (seq / 16 cl.)",
                crev=f"{seq} / {conc}",
                goal=f"<= 1 / <= {CONCURRENCY} (reused)",
                result=verdict(seq <= 1 and conc <= CONCURRENCY),
            )
        )
    blob = results.get("blob")
    if blob:
        d, c = blob["direct"]["mib_per_s"], blob["crev"]["mib_per_s"]
        rows.append(
            Row(
                f"blob {blob['blob_bytes'] / MiB:.0f} MiB throughput (MiB/s)",
                fmt(d, 0),
                fmt(c, 0),
                fmt(c / d) + "x",
                f">= {GOAL_BLOB_RATIO:.2f}x",
                verdict(c / d >= GOAL_BLOB_RATIO),
            )
        )
        rows.append(
            Row(
                "crev peak RSS while streaming (MiB)",
                crev=fmt(blob["crev_peak_rss_mib"], 1),
                goal=f"< {GOAL_RSS_MIB:g} MiB",
                result=verdict(blob["crev_peak_rss_mib"] < GOAL_RSS_MIB),
            )
        )
    copy = results.get("copy")
    if copy:
        d, c = copy["direct"]["seconds"], copy["crev"]["seconds"]
        rows.append(
            Row(
                "skopeo copy, 6 layers ~15 MiB (s)",
                fmt(d, 3),
                fmt(c, 3),
                fmt(c / d) + "x",
                f"<= {GOAL_COPY_RATIO:.2f}x",
                verdict(c / d <= GOAL_COPY_RATIO),
            )
        )
    upstream = results.get("upstream_requests")
    if upstream:
        for key, label in (("first", "first pull, fresh crev"), ("warm", "warm crev")):
            if key not in upstream:
                continue
            d, c = upstream[key]["direct"], upstream[key]["crev"]
            rows.append(
                Row(
                    f"upstream requests per pull, {label}",
                    f"{d['total']} ({d['registry']}+{d['issuer']})",
                    f"{c['total']} ({c['registry']}+{c['issuer']})",
                    fmt(c["total"] / d["total"]) + "x",
                    "equal",
                    verdict(c["total"] == d["total"]),
                )
            )
    cold = results.get("cold_start")
    if cold:
        for variant in COLD_VARIANTS[:2]:
            first = cold[variant.name]["first_answer_ms"]
            rows.append(
                Row(
                    f"cold start to first answer, {variant.name} (ms)",
                    crev=fmt(first, 0),
                    goal=f"< {GOAL_COLD_MS:g} ms",
                    result=verdict(first < GOAL_COLD_MS),
                )
            )
        rows.append(
            Row(
                "  import api/v2.py: " + " / ".join(v.name for v in COLD_VARIANTS) + " (ms)",
                crev=" / ".join(fmt(cold[v.name]["import_ms"], 0) for v in COLD_VARIANTS),
            )
        )
        rows.append(
            Row("cold start: bare `python -c pass` (ms)", crev=fmt(cold["bare_python_ms"], 0))
        )
    return rows


def render_table(rows: list[Row]) -> str:
    header = Row("metric", "direct", "crev", "crev/direct", "goal", "result")
    table = [header, *rows]
    columns = list(asdict(header))
    widths = {c: max(len(getattr(r, c)) for r in table) for c in columns}
    lines = []
    for i, row in enumerate(table):
        cells = [
            getattr(row, c).ljust(widths[c])
            if c in ("metric", "goal")
            else getattr(row, c).rjust(widths[c])
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    return "\n".join(lines)


def render_findings(results: dict[str, Any]) -> str:
    out: list[str] = []
    profile = results.get("profile")
    if profile and "manifest" in profile:
        manifest, blob = profile["manifest"], profile["blob"]
        cpu_ms = results.get("warm_manifest", {}).get("crev_cpu_ms_per_request")
        out.append(
            f"crev under warm manifest GETs, {CONCURRENCY} clients (py-spy; {manifest['units']} "
            f"requests; {manifest['samples']} busy samples; dropped as waits: "
            + ", ".join(
                f"{n} in {name.split(' ')[0]}"
                for name, n in manifest["wait_samples_dropped"].items()
            )
            + ")"
        )
        out.append(
            "  by component"
            + (f" (of {cpu_ms:.2f} ms CPU per request)" if cpu_ms else "")
            + ": "
            + ", ".join(
                f"{e['name']} {e['percent']:.0f}%"
                + (f" ~{cpu_ms * e['percent'] / 100:.2f} ms" if cpu_ms else "")
                for e in manifest["components"]
            )
        )
        out.append("  top functions, self time:")
        out += [f"    {e['percent']:5.1f}%  {e['name']}" for e in manifest["self"][:10]]
        out.append("  crev functions, inclusive time:")
        out += [f"    {e['percent']:5.1f}%  {e['name']}" for e in manifest["crev_inclusive"][:8]]
        out.append(f"  flame graph: {profile['files']['flamegraph']}")
        out.append(
            f"crev streaming the blob (py-spy, all samples incl. socket reads and writes; "
            f"{blob['samples']} samples over {blob['units']} MiB)"
        )
        out.append(
            "  by component: "
            + ", ".join(f"{e['name']} {e['percent']:.0f}%" for e in blob["components"])
        )
        out.append("  top functions, self time:")
        out += [f"    {e['percent']:5.1f}%  {e['name']}" for e in blob["self"][:8]]
    elif profile:
        out.append(f"profile: {profile.get('skipped', 'no samples')}")
    cold = results.get("cold_start")
    if cold:
        imports = cold["importtime"]
        out.append(
            f"cold-start imports (python -X importtime, as deployed, median of runs): "
            f"api/v2.py takes {imports['total_ms']:.1f} ms, of which crev's own modules "
            f"{imports['crev_self_ms']:.1f} ms (compiling and running their bodies)"
        )
        out.append(
            "  self time by top-level package: "
            + ", ".join(
                f"{name} {ms:.1f}" for name, ms in list(imports["self_ms_by_package"].items())[:10]
            )
            + " (ms)"
        )
        out.append(
            "  top modules by self time: "
            + ", ".join(
                f"{name} {ms:.1f}" for name, ms in list(imports["self_ms_by_module"].items())[:10]
            )
            + " (ms)"
        )
        out.append("  outside modules crev imports first (cumulative ms):")
        out += [
            f"    {e['cum_ms']:6.1f}  {name}  (from {e['imported_by']})"
            for name, e in list(imports["imported_by_crev_ms"].items())[:10]
        ]
    return "\n".join(out)


# ----------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds; under a minute")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "latest.json",
        help="where to write the figures (default: bench/results/latest.json)",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile crev with py-spy (default: on for a full run, off with --quick)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    profile = args.profile if args.profile is not None else not args.quick
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="crev-bench-") as tmp:
        workdir = Path(tmp)
        with start_test_registry(workdir / "registry") as registry:
            log(f"registry at {registry.url}; pushing images")
            push_small_image(registry, f"{PREFIX}/tool", "1")
            copy_name = push_copy_image(registry)
            big = push_large_image(registry, f"{PREFIX}/big", "1", BLOB_DATA_SIZE)
            big_digest = big.blobs[-1]
            big_size = big.blob_sizes[big_digest]
            registry.clear_logs()
            with crev_for(registry, workdir / "crev") as crev:
                log(f"crev at {crev.url} (pid {crev.process.pid})")
                targets = {
                    "direct": Target("direct", registry.url, registry.host, f"{PREFIX}/"),
                    "crev": Target("crev", crev.url, crev.host, ""),
                }
                with untouched_crev(registry, workdir) as fresh:
                    first = {
                        "direct": count_upstream_requests(
                            registry, targets["direct"], copy_name, workdir
                        ),
                        "crev": count_upstream_requests(registry, fresh, copy_name, workdir),
                    }
                results["warm_manifest"] = bench_warm_manifest(registry, targets, crev, plan)
                results["concurrent"] = bench_concurrent(registry, targets, plan)
                results["connection_reuse"] = bench_connection_reuse(registry, targets, crev, plan)
                results["blob"] = bench_blob(registry, targets, crev, big_digest, big_size, plan)
                results["copy"] = bench_copy(targets, copy_name, plan, workdir)
                warm = bench_upstream_requests(registry, targets, copy_name, workdir)
                results["upstream_requests"] = {"first": first, "warm": warm}
                if profile:
                    results["profile"] = bench_profile(
                        registry, targets, crev, (big_digest, big_size), plan, results_dir
                    )
            results["cold_start"] = bench_cold_start(registry, plan, workdir)
    rows = build_rows(results)
    table = render_table(rows)
    findings = render_findings(results)
    elapsed = time.perf_counter() - started
    print(table)
    if findings:
        print()
        print(findings)
    document = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mode": "quick" if args.quick else "full",
            "plan": asdict(plan),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "commit": git_commit(),
            "crev_uncommitted_changes": git_dirty(),
            "elapsed_s": elapsed,
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "rows": [asdict(row) for row in rows],
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    load = os.getloadavg()
    print(
        f"\nwrote {args.json} ({elapsed:.0f} s); load average {load_start[0]:.2f} at start, "
        f"{load[0]:.2f} at end on {os.cpu_count()} CPUs"
    )
    if max(load_start[0], load[0]) > (os.cpu_count() or 1):
        print("note: other processes competed for the CPUs; figures are noisier than usual")
    return 0


def git_commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "unknown"


def git_dirty() -> bool | None:
    """Whether crev/ or api/ differ from the commit (the working tree is what was measured)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "crev", "api"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return bool(status.stdout.strip())
    return None


if __name__ == "__main__":
    sys.exit(main())
