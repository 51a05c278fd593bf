"""Concurrent pulls through crev for a fixed time, checking every byte: the engine shared by the
short load test (`test_load.py`) and the longer run (`python -m bench load`).

Each worker repeats random fetches from a plan (manifests by tag and by digest, blobs) over its
own keep-alive connection, verifies the sha256 of every body against the digest it asked for
(or the tag's known digest), and records latencies. A sampler reads crev's resident memory from
`/proc/<pid>/status` meanwhile.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .images import MANIFEST_ACCEPT, PushedImage

MiB = 1024 * 1024
RSS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Fetch:
    """One GET through crev and the digest its body must have."""

    path: str
    digest: str
    kind: str  # "manifest-tag", "manifest-digest" or "blob"


def pull_plan(
    images: Iterable[PushedImage], prefix: str = "acme", max_blob_bytes: int = 4 * MiB
) -> list[Fetch]:
    """Every manifest (by tag and by digest, index children too) and every blob up to
    `max_blob_bytes`, under the names clients use (without `prefix/`)."""
    plan: list[Fetch] = []
    for image in images:
        name = image.name.removeprefix(f"{prefix}/")
        plan.append(Fetch(f"/v2/{name}/manifests/{image.tag}", image.digest, "manifest-tag"))
        for digest in (image.digest, *image.children):
            plan.append(Fetch(f"/v2/{name}/manifests/{digest}", digest, "manifest-digest"))
        for digest in image.blobs:
            if image.blob_sizes[digest] <= max_blob_bytes:
                plan.append(Fetch(f"/v2/{name}/blobs/{digest}", digest, "blob"))
    return plan


def scopes_for(images: Iterable[PushedImage]) -> list[str]:
    return sorted({f"repository:{image.name}:pull" for image in images})


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from `/proc/<pid>/status` (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class LoadResult:
    duration: float
    concurrency: int
    requests: int = 0
    errors: int = 0
    wrong_digests: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    by_kind: dict[str, int] = field(default_factory=dict)
    # (seconds since the measured run started, KiB); samples during warm-up have t < 0.
    rss: list[tuple[float, int]] = field(default_factory=list, repr=False)
    error_samples: list[str] = field(default_factory=list)

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return self.percentile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")

    def rss_peak_kib(self, start: float = float("-inf"), end: float = float("inf")) -> int:
        samples = [kib for at, kib in self.rss if start <= at < end]
        return max(samples) if samples else 0

    @property
    def peak_rss_kib(self) -> int:
        return self.rss_peak_kib()

    @property
    def first_half_peak_kib(self) -> int:
        return self.rss_peak_kib(0.0, self.duration / 2)

    @property
    def second_half_peak_kib(self) -> int:
        return self.rss_peak_kib(self.duration / 2)

    def summary(self) -> dict[str, object]:
        return {
            "duration_s": round(self.duration, 1),
            "concurrency": self.concurrency,
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.duration, 1) if self.duration else 0,
            "errors": self.errors,
            "wrong_digests": self.wrong_digests,
            "mib_transferred": round(self.bytes / MiB, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "peak_rss_mib": round(self.peak_rss_kib / 1024, 1),
            "rss_first_half_peak_mib": round(self.first_half_peak_kib / 1024, 1),
            "rss_second_half_peak_mib": round(self.second_half_peak_kib / 1024, 1),
            "by_kind": dict(sorted(self.by_kind.items())),
            "error_samples": self.error_samples[:5],
        }


def run_load(
    base_url: str,
    plan: list[Fetch],
    token: Callable[[], str],
    *,
    duration: float,
    concurrency: int,
    pid: int | None = None,
    warmup: float = 1.0,
    seed: int = 0,
) -> LoadResult:
    """`concurrency` workers fetch from `plan` for `warmup` + `duration` seconds; only the
    `duration` part is counted. `token()` gives a bearer token (asked again after a 401)."""
    result = LoadResult(duration=duration, concurrency=concurrency)
    lock = threading.Lock()
    started = time.monotonic() + warmup  # when counting starts
    deadline = started + duration
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.is_set():
            assert pid is not None
            with lock:
                result.rss.append((time.monotonic() - started, rss_kib(pid)))
            stop.wait(RSS_INTERVAL_S)

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        bearer = token()
        with httpx.Client(base_url=base_url, timeout=30, verify=False) as client:
            while (now := time.monotonic()) < deadline:
                fetch = rng.choice(plan)
                counted = now >= started
                outcome, size, elapsed = _fetch(client, fetch, bearer)
                if outcome == "unauthorized":
                    bearer = token()
                    outcome, size, elapsed = _fetch(client, fetch, bearer)
                if not counted:
                    continue
                with lock:
                    result.requests += 1
                    result.by_kind[fetch.kind] = result.by_kind.get(fetch.kind, 0) + 1
                    if outcome == "ok":
                        result.latencies.append(elapsed)
                        result.bytes += size
                    elif outcome == "wrong digest":
                        result.wrong_digests += 1
                        result.error_samples.append(f"{fetch.path}: wrong digest")
                    else:
                        result.errors += 1
                        result.error_samples.append(f"{fetch.path}: {outcome}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    sampler = threading.Thread(target=sample_rss, daemon=True) if pid is not None else None
    if sampler is not None:
        sampler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(warmup + duration + 60)
    stop.set()
    if sampler is not None:
        sampler.join(5)
    return result


def _fetch(client: httpx.Client, fetch: Fetch, bearer: str) -> tuple[str, int, float]:
    headers = {"Authorization": f"Bearer {bearer}"}
    if fetch.kind != "blob":
        headers["Accept"] = MANIFEST_ACCEPT
    began = time.monotonic()
    try:
        response = client.get(fetch.path, headers=headers)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}", 0, time.monotonic() - began
    elapsed = time.monotonic() - began
    if response.status_code == 401:
        return "unauthorized", 0, elapsed
    if response.status_code != 200:
        return f"status {response.status_code}", 0, elapsed
    body = response.content
    if "sha256:" + hashlib.sha256(body).hexdigest() != fetch.digest:
        return "wrong digest", len(body), elapsed
    if fetch.kind != "blob" and response.headers.get("docker-content-digest") != fetch.digest:
        return "wrong digest", len(body), elapsed
    return "ok", len(body), elapsed
