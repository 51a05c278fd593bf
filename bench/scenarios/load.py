"""Sustained load: concurrent pulls through `python -m crev` for a while, every body checked
against its digest, crev's memory watched throughout (the engine is `rig/pull_load`,
which `tests/hardening/test_load.py` runs for a few seconds)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from rig import PushedImage, TestRegistry, seed_images, start_test_registry
from rig.crev_process import CrevProcess, crev_for
from rig.pull_load import LoadResult, MiB, pull_plan, run_load

from ..probes import log, process_cpu_seconds
from ..testbed import PREFIX, tls_upstream


@dataclass(frozen=True)
class LoadOptions:
    duration: float = 60.0  # seconds measured
    concurrency: int = 16  # concurrent pullers
    warmup: float = 2.0  # seconds not counted
    large_mib: int = 32  # size of the large image's layer
    max_blob_mib: float = 64.0  # blobs larger than this are left out of the plan
    seed: int = 0
    tls: bool = False  # the registry behind a TLS front, as crev's upstream


@dataclass(frozen=True)
class LoadRun:
    result: LoadResult
    fetches: int  # distinct fetches in the plan the pullers draw from
    upstream: str  # "plain", or "tls" for the registry behind a TLS front
    crev_cpu_s: float  # crev's user+system CPU over the whole run, warm-up included


def sustained_load(options: LoadOptions) -> LoadRun:
    """Does crev keep every byte right and its memory flat under concurrent pulls (manifests
    by tag and by digest, blobs) of the standard images?"""
    with tempfile.TemporaryDirectory(prefix="crev-load-") as tmp:
        workdir = Path(tmp)
        log("starting the registry and pushing images")
        with start_test_registry(workdir / "registry") as registry:
            seeded = seed_images(registry, large_size=options.large_mib * MiB)
            images = [
                image
                for key, image in seeded.items()
                if key not in ("other", "private")  # outside the prefix / needs credentials
            ]
            plan = pull_plan(images, PREFIX, int(options.max_blob_mib * MiB))
            with crev_in_front(registry, workdir, options.tls) as crev:
                log(
                    f"pulling through {crev.url} for {options.warmup:g} + {options.duration:g} s "
                    f"with {options.concurrency} pullers"
                )
                cpu_before = process_cpu_seconds(crev.process.pid)
                result = run_load(
                    crev.url,
                    plan,
                    lambda: anonymous_token(crev.url, registry.service, images),
                    duration=options.duration,
                    concurrency=options.concurrency,
                    pid=crev.process.pid,
                    warmup=options.warmup,
                    seed=options.seed,
                )
                crev_cpu_s = process_cpu_seconds(crev.process.pid) - cpu_before
    return LoadRun(result, len(plan), "tls" if options.tls else "plain", crev_cpu_s)


@contextlib.contextmanager
def crev_in_front(registry: TestRegistry, workdir: Path, tls: bool) -> Iterator[CrevProcess]:
    """crev serving the registry, or the registry behind a TLS front when `tls`."""
    if not tls:
        with crev_for(registry, workdir / "crev") as crev:
            yield crev
        return
    with tls_upstream(registry, workdir) as (_, crev):
        yield crev


def anonymous_token(crev_url: str, service: str, images: list[PushedImage]) -> str:
    """A pull token for every image, from crev's token endpoint (as docker gets one)."""
    params = [("service", service)] + [
        ("scope", f"repository:{image.name.removeprefix(PREFIX + '/')}:pull") for image in images
    ]
    response = httpx.get(f"{crev_url}/api/token", params=params, timeout=30)
    response.raise_for_status()
    document = response.json()
    return str(document.get("token") or document["access_token"])
