"""Streaming a large blob: how fast crev relays it, and how much memory that takes."""

from __future__ import annotations

from typing import Any

from ..plan import Plan
from ..probes import (
    MiB,
    RssSampler,
    log,
    median,
    process_cpu_seconds,
    process_memory_kib,
    stream_blob,
)
from ..testbed import Side, Testbed, side_order


def blob_streaming(bed: Testbed, plan: Plan) -> dict[str, Any]:
    """How fast does the large layer stream through crev next to direct, how much CPU does crev
    spend on it, and how high does crev's resident memory go meanwhile?"""
    headers = bed.blob_headers()
    targets = bed.targets
    size = bed.images.big_blob.size
    rounds: dict[Side, list[float]] = {side: [] for side in targets}
    rss_before = process_memory_kib(bed.crev_pid)
    peaks = []
    cpu_seconds = []
    for index in range(plan.blob_rounds):
        for side in side_order(index):
            target = targets[side]
            path = bed.blob_path(target)
            if side == "crev":
                before = process_cpu_seconds(bed.crev_pid)
                with RssSampler(bed.crev_pid) as sampler:
                    rounds[side].append(stream_blob(target.host, path, headers, size, target.tls))
                cpu_seconds.append(process_cpu_seconds(bed.crev_pid) - before)
                peaks.append(sampler.peak_mib)
            else:
                rounds[side].append(stream_blob(target.host, path, headers, size, target.tls))
    rss_after = process_memory_kib(bed.crev_pid)
    result: dict[str, Any] = {
        side: {"mib_per_s": median(rounds[side]), "rounds": rounds[side]} for side in targets
    }
    result.update(
        blob_bytes=size,
        crev_cpu_s_per_64_mib=median(cpu_seconds) * 64 * MiB / size,
        crev_cpu_s_rounds=cpu_seconds,
        crev_peak_rss_mib=max(peaks),
        crev_rss_before_mib=rss_before["VmRSS"] / 1024,
        crev_vmhwm_mib=rss_after["VmHWM"] / 1024,
    )
    log(
        f"blob ({bed.upstream} upstream): direct {result['direct']['mib_per_s']:.0f} MiB/s, crev "
        f"{result['crev']['mib_per_s']:.0f} MiB/s, crev CPU "
        f"{result['crev_cpu_s_per_64_mib']:.3f} s per 64 MiB, peak RSS {max(peaks):.1f} MiB"
    )
    return result
