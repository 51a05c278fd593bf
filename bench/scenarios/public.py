"""Public routes: round trips and time of a pull through `CREV_PUBLIC=1` behind the caching edge
stand-in that follows Vercel's rules (`rig/caching_edge.py`), next to a direct pull; from the
registry that serves blobs itself, and from one that redirects them to signed storage, where
crev's 308 lets the edge keep each blob's redirect."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from rig import TestRegistry, start_test_registry
from rig.caching_edge import CACHEABLE_STATUSES, run_caching_edge
from rig.crev_process import crev_for

from ..probes import log, timed_copy
from ..testbed import Target, push_copy_image
from .pulls import upstream_request_count


class Pull(NamedTuple):
    seconds: float
    client_requests: int | None  # None: straight to the registry, no edge to count them
    crev_requests: int | None
    upstream_requests: int
    # Blob reads the storage served by signed URL; None for a registry that serves blobs itself.
    storage_requests: int | None = None


PULLS = ("direct", "public, first", "public, repeated")


def public_routes(rounds: int) -> dict[str, list[Pull]]:
    """What does a pull through a public route cost, the first time (a fresh crev and an empty
    edge) and repeated by another client, next to a direct pull? Every layer of the image is
    small enough for the edge to keep."""
    results: dict[str, list[Pull]] = {name: [] for name in PULLS}
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-public-") as tmp,
        start_test_registry(Path(tmp) / "registry") as registry,
    ):
        image = push_copy_image(registry, "acme/six", "1")
        for round_number in range(rounds):
            work = Path(tmp) / f"round-{round_number}"
            work.mkdir()
            results["direct"].append(direct_pull(registry, image, work))
            first, repeated = public_pulls(registry, image, work)
            results["public, first"].append(first)
            results["public, repeated"].append(repeated)
            log(f"public: round {round_number + 1} of {rounds}")
    return results


# From the registry that redirects blobs: with crev's 308s kept by the edge, and with an edge
# that keeps no 308, which sees what crev's 307s were before (a 307 is never kept).
REDIRECTING_PULLS = (
    "direct",
    "public, first",
    "public, repeated",
    "public, no 308 kept, first",
    "public, no 308 kept, repeated",
)


def public_routes_redirecting(rounds: int) -> dict[str, list[Pull]]:
    """The same pulls from a registry that redirects blob reads to signed storage (S3 on
    `moto_server`), with crev's 308s kept at the edge and without."""
    results: dict[str, list[Pull]] = {name: [] for name in REDIRECTING_PULLS}
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-redirecting-") as tmp,
        start_test_registry(Path(tmp) / "registry", redirecting=True) as registry,
        _trusting_storage(registry),
    ):
        image = push_copy_image(registry, "acme/six", "1")
        for round_number in range(rounds):
            work = Path(tmp) / f"round-{round_number}"
            work.mkdir()
            results["direct"].append(direct_pull(registry, image, work))
            for label, keeps in (
                ("public", CACHEABLE_STATUSES),
                ("public, no 308 kept", CACHEABLE_STATUSES - {308}),
            ):
                first, repeated = public_pulls(registry, image, work / label, keeps)
                results[f"{label}, first"].append(first)
                results[f"{label}, repeated"].append(repeated)
            log(f"public, redirecting registry: round {round_number + 1} of {rounds}")
    return results


@contextlib.contextmanager
def _trusting_storage(registry: TestRegistry) -> Iterator[None]:
    """skopeo (Go) trusts the storage's CA through SSL_CERT_FILE while the block runs."""
    assert registry.storage is not None
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(registry.storage.ca_file)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before


def direct_pull(registry: TestRegistry, image: str, work: Path) -> Pull:
    registry.clear_logs()
    seconds = timed_copy(Target.direct(registry).reference(image), work / "direct")
    return Pull(seconds, None, None, upstream_request_count(registry), _storage_reads(registry))


def public_pulls(
    registry: TestRegistry,
    image: str,
    work: Path,
    keeps: frozenset[int] = CACHEABLE_STATUSES,
) -> tuple[Pull, Pull]:
    """A first pull through a fresh crev and edge (which keeps answers of the `keeps`
    statuses), then a repeated one by another client."""
    with (
        crev_for(registry, work / "crev", public="1") as crev,
        run_caching_edge(crev.url, keeps) as edge,
    ):
        pulls = []
        for name in ("first", "repeated"):
            registry.clear_logs()
            edge.clear_log()
            seconds = timed_copy(f"{edge.host}/{image}:1", work / name)
            pulls.append(
                Pull(
                    seconds,
                    len(edge.requests),
                    len(edge.misses()),
                    upstream_request_count(registry),
                    _storage_reads(registry),
                )
            )
    return pulls[0], pulls[1]


def _storage_reads(registry: TestRegistry) -> int | None:
    if registry.storage is None:
        return None
    return sum(len(reads) for reads in registry.storage.signed_reads().values())
