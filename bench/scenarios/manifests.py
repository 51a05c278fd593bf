"""Warm manifest requests: what crev adds to each, how many it serves at once, and whether it
reuses its upstream connections meanwhile."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ..plan import Plan
from ..probes import (
    UpstreamConnectionWatcher,
    in_threads,
    log,
    median,
    percentile,
    process_cpu_seconds,
    timed_requests,
)
from ..testbed import CONCURRENCY, Side, Target, Testbed, side_order


def warm_manifest_latency(bed: Testbed, plan: Plan) -> dict[str, Any]:
    """How much latency does crev add to a warm manifest HEAD and GET, and how much CPU does
    it spend on each?"""
    headers = bed.manifest_headers()
    targets = bed.targets
    clients = {side: target.client() for side, target in targets.items()}
    urls = {side: target.manifest_url() for side, target in targets.items()}
    results: dict[str, Any] = {}
    cpu_seconds = {"HEAD": 0.0, "GET": 0.0}
    cpu_requests = {"HEAD": 0, "GET": 0}
    try:
        for side in targets:  # warm up: connections, crev's upstream pool, registry caches
            timed_requests(clients[side], "GET", urls[side], headers, 50)
        for method in ("HEAD", "GET"):
            rounds: dict[Side, list[dict[str, float]]] = {side: [] for side in targets}
            for index in range(plan.rounds):
                for side in side_order(index):
                    before = process_cpu_seconds(bed.crev_pid) if side == "crev" else 0.0
                    latencies = timed_requests(
                        clients[side],
                        method,
                        urls[side],
                        headers,
                        plan.sequential,
                        plan.sequential_cap_s,
                    )
                    if side == "crev":
                        cpu_seconds[method] += process_cpu_seconds(bed.crev_pid) - before
                        cpu_requests[method] += len(latencies)
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
    results["crev_cpu_ms_per_request"] = (
        sum(cpu_seconds.values()) * 1000 / sum(cpu_requests.values())
    )
    results["crev_cpu_ms_per_method"] = {
        method: cpu_seconds[method] * 1000 / cpu_requests[method] for method in cpu_seconds
    }
    return results


def concurrent_throughput(bed: Testbed, plan: Plan) -> dict[str, Any]:
    """How many warm manifest GETs a second do CONCURRENCY clients get, direct and via crev?"""
    headers = bed.manifest_headers()
    targets = bed.targets
    rounds: dict[Side, list[float]] = {side: [] for side in targets}
    for index in range(plan.concurrent_rounds):
        for side in side_order(index):
            rounds[side].append(requests_per_second(targets[side], headers, plan.concurrent))
    result = {side: {"rps": median(rounds[side]), "rounds": rounds[side]} for side in targets}
    log(f"concurrent: direct {result['direct']['rps']:.0f} rps, crev {result['crev']['rps']:.0f}")
    return result


def requests_per_second(target: Target, headers: dict[str, str], total: int) -> float:
    """`total` manifest GETs over CONCURRENCY keep-alive clients, timed from when all are
    connected to when the last is done."""
    url = target.manifest_url()
    per_client = total // CONCURRENCY
    clients = [target.client() for _ in range(CONCURRENCY)]
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

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
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


def connection_reuse(bed: Testbed, plan: Plan) -> dict[str, Any]:
    """How many upstream connections does a warm crev open, for sequential and for concurrent
    requests?"""
    headers = bed.manifest_headers()
    url = bed.targets["crev"].manifest_url()
    sequential = min(plan.sequential, 300)
    with (
        UpstreamConnectionWatcher(bed.crev_pid, bed.upstream_port) as seq_watch,
        httpx.Client() as client,
    ):
        timed_requests(client, "HEAD", url, headers, sequential)
    concurrent = CONCURRENCY * 20

    def worker(_: int) -> None:
        with httpx.Client() as own:
            timed_requests(own, "GET", url, headers, concurrent // CONCURRENCY)

    with UpstreamConnectionWatcher(bed.crev_pid, bed.upstream_port) as conc_watch:
        in_threads(worker, CONCURRENCY)
    return {
        "sequential_requests": sequential,
        "sequential_new_connections": seq_watch.opened,
        "concurrent_requests": concurrent,
        "concurrent_new_connections": conc_watch.opened,
        "pooled_before": len(seq_watch.baseline),
    }


def manifest_load(url: str, headers: dict[str, str], until: Callable[[], bool]) -> int:
    """Warm manifest GETs from CONCURRENCY keep-alive clients until `until()`; requests sent."""
    counts = [0] * CONCURRENCY

    def worker(slot: int) -> None:
        with httpx.Client(timeout=30) as client:
            while not until():
                client.get(url, headers=headers)
                counts[slot] += 1

    in_threads(worker, CONCURRENCY)
    return sum(counts)
