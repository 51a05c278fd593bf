"""Public routes: round trips and time of a pull through `CREV_PUBLIC=1` behind the caching edge
stand-in that follows Vercel's rules (`rig/caching_edge.py`), next to a direct pull."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

from rig import TestRegistry, start_test_registry
from rig.caching_edge import run_caching_edge
from rig.crev_process import crev_for

from ..probes import log, timed_copy
from ..testbed import Target, push_copy_image
from .pulls import upstream_request_count


class Pull(NamedTuple):
    seconds: float
    client_requests: int | None  # None: straight to the registry, no edge to count them
    crev_requests: int | None
    upstream_requests: int


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


def direct_pull(registry: TestRegistry, image: str, work: Path) -> Pull:
    registry.clear_logs()
    seconds = timed_copy(Target.direct(registry).reference(image), work / "direct")
    return Pull(seconds, None, None, upstream_request_count(registry))


def public_pulls(registry: TestRegistry, image: str, work: Path) -> tuple[Pull, Pull]:
    """A first pull through a fresh crev and edge, then a repeated one by another client."""
    with crev_for(registry, work / "crev", public="1") as crev, run_caching_edge(crev.url) as edge:
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
                )
            )
    return pulls[0], pulls[1]
