"""Where crev's CPU time goes: py-spy on the running crev under warm manifest GETs (socket waits
dropped) and while it streams the large blob (every sample: the thread is the bottleneck either
way), summed per function and per component."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rig.crev_process import PROJECT_ROOT

from .plan import Plan
from .probes import MiB, log, stream_blob
from .scenarios.manifests import manifest_load
from .testbed import Testbed


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


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
    # Non-blocking: pausing crev's many threads at every sample would distort what is measured
    # (bench/README.md says by how much).
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


def crev_profile(bed: Testbed, plan: Plan, results_dir: Path) -> dict[str, Any]:
    """Where does crev's CPU go under warm manifest GETs, and while it streams the blob?"""
    py_spy = find_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy not installed (pip install -r requirements-dev.txt)"}
    headers = bed.manifest_headers()
    target = bed.targets["crev"]
    url = target.manifest_url()
    blob = bed.images.big_blob
    window = max(plan.profile_seconds / 3, 2)

    def manifests(until: Callable[[], bool]) -> int:
        return manifest_load(url, headers, until)

    def blobs(until: Callable[[], bool]) -> int:
        blob_headers = bed.blob_headers()
        path = bed.blob_path(target)
        streamed = 0
        while not until():
            stream_blob(target.host, path, blob_headers, blob.size, target.tls)
            streamed += blob.size // MiB
        return streamed

    files = {
        "manifest": results_dir / "profile-manifest.txt",
        "flamegraph": results_dir / "profile.svg",
        "blob": results_dir / "profile-blob.txt",
    }
    pid = bed.crev_pid
    requests = py_spy_record(py_spy, pid, window, files["manifest"], "raw", manifests)
    py_spy_record(py_spy, pid, window, files["flamegraph"], "flamegraph", manifests)
    mib = py_spy_record(py_spy, pid, window, files["blob"], "raw", blobs)
    result = {
        "manifest": analyse_profile(files["manifest"], requests, drop_waits=True),
        "blob": analyse_profile(files["blob"], mib),
        "files": {key: os.path.relpath(path, PROJECT_ROOT) for key, path in files.items()},
    }
    log(
        f"profile: {result['manifest']['samples']} samples over {requests} manifest GETs, "
        f"{result['blob']['samples']} over {mib} MiB of blob"
    )
    return result
