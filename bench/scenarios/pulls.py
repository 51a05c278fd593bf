"""Whole pulls with `skopeo copy`: how long one takes, and how many requests reach the
upstream for it."""

from __future__ import annotations

import shutil
from typing import Any

from rig import TestRegistry
from rig.crev_process import crev_for

from ..plan import Plan
from ..probes import log, median, process_cpu_seconds, timed_copy
from ..testbed import Side, Target, Testbed, side_order


def copy_time(
    bed: Testbed, plan: Plan, image: str | None = None, rounds_count: int | None = None
) -> dict[str, Any]:
    """How long does a `skopeo copy` of `image` (the multi-layer one by default) take, direct
    and via crev, over `rounds_count` rounds (`plan.copy_rounds` by default)?"""
    image = image or bed.images.copy_image
    targets = bed.targets
    rounds: dict[Side, list[float]] = {side: [] for side in targets}
    count = plan.copy_rounds if rounds_count is None else rounds_count
    for index in range(-1, count):  # round -1 warms up both sides, not counted
        for side in side_order(index):
            destination = bed.scratch(f"copy-{side}-")
            seconds = timed_copy(targets[side].reference(image), destination)
            shutil.rmtree(destination)
            if index >= 0:
                rounds[side].append(seconds)
    result: dict[str, Any] = {
        side: {"seconds": median(rounds[side]), "rounds": rounds[side]} for side in targets
    }
    # Each round's crev / direct, the two copies of a round made back to back.
    result["ratios"] = [c / d for c, d in zip(rounds["crev"], rounds["direct"], strict=True)]
    log(
        f"copy {image} ({bed.upstream} upstream): direct {result['direct']['seconds']:.3f} s, "
        f"crev {result['crev']['seconds']:.3f} s"
    )
    return result


def copy_cpu(bed: Testbed, plan: Plan, image: str) -> dict[str, Any]:
    """How much CPU (user + system) does crev spend on one `skopeo copy` of `image`, over
    `plan.cpu_copies` copies one after another, once a copy has warmed it up?"""
    target = bed.targets["crev"]
    copies: list[float] = []
    for index in range(-1, plan.cpu_copies):
        destination = bed.scratch("cpu-copy-")
        before = process_cpu_seconds(bed.crev_pid)
        timed_copy(target.reference(image), destination)
        spent = process_cpu_seconds(bed.crev_pid) - before
        shutil.rmtree(destination)
        if index >= 0:
            copies.append(spent)
    result = {"copies": len(copies), "ms_per_copy": sum(copies) * 1000 / len(copies)}
    log(f"crev CPU per copy of {image} ({bed.upstream} upstream): {result['ms_per_copy']:.1f} ms")
    return result


def first_pull_requests(bed: Testbed) -> dict[Side, dict[str, Any]]:
    """How many upstream requests does the first pull through a crev that has served nothing
    yet make, next to a direct pull?"""
    with crev_for(bed.registry, bed.workdir / "crev-fresh", untouched=True) as fresh:
        return {
            "direct": upstream_requests(bed, Target.direct(bed.registry)),
            "crev": upstream_requests(bed, Target.through(fresh)),
        }


def warm_pull_requests(bed: Testbed) -> dict[Side, dict[str, Any]]:
    """How many upstream requests does a pull through the warm crev make, next to direct?"""
    return {side: upstream_requests(bed, target) for side, target in bed.targets.items()}


def upstream_requests(bed: Testbed, target: Target) -> dict[str, Any]:
    """The registry's and the token issuer's requests for one `skopeo copy` through `target`."""
    bed.registry.clear_logs()
    destination = bed.scratch(f"count-{target.side}-")
    timed_copy(target.reference(bed.images.copy_image), destination)
    shutil.rmtree(destination)
    access = bed.registry.access_log_records()
    issued = bed.registry.issuer.requests()
    return {
        "registry": len(access),
        "issuer": len(issued),
        "total": len(access) + len(issued),
        "registry_requests": [f"{r.method} {r.path} {r.status}" for r in access],
        "issuer_requests": [f"{r.method} {r.path} {r.status} {r.scopes}" for r in issued],
    }


def upstream_request_count(registry: TestRegistry) -> int:
    """Requests the registry and its token issuer served since their logs were cleared."""
    return len(registry.access_log()) + len(registry.issuer.requests())
