"""Moving registries (issue 23): the upstream requests of a first and a repeated pull through a
public route with a fallback and `CREV_TAG_CACHE_SECONDS`, behind the caching edge stand-in that
follows Vercel's rules, for an image the new registry has and one only the old registry has.

    .venv/bin/python -m bench moving            # one round
    .venv/bin/python -m bench moving --rounds 3
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import NamedTuple

from rig import TestRegistry, start_test_registry
from rig.caching_edge import run_caching_edge
from rig.crev_process import crev_for

from ..probes import log, timed_copy
from ..testbed import push_copy_image
from .pulls import upstream_request_count

TAG_SECONDS = "300"
IMAGES = ("on the new registry", "on the old registry only")
PULLS = ("first", "repeated")


class MovingPull(NamedTuple):
    seconds: float
    client_requests: int
    crev_requests: int
    new_registry_requests: int
    old_registry_requests: int


def moving_registries(rounds: int) -> dict[str, list[MovingPull]]:
    """Per image and pull (first through a fresh crev and an empty edge, then repeated by
    another client), what reached the edge, crev and each registry."""
    results: dict[str, list[MovingPull]] = {
        f"{image}, {pull}": [] for image in IMAGES for pull in PULLS
    }
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-moving-") as tmp,
        start_test_registry(Path(tmp) / "new") as new,
        start_test_registry(Path(tmp) / "old") as old,
    ):
        names = {
            IMAGES[0]: push_copy_image(new, "acme/six", "1"),
            IMAGES[1]: push_copy_image(old, "old/legacy", "1").removeprefix("old/"),
        }
        for round_number in range(rounds):
            work = Path(tmp) / f"round-{round_number}"
            for image, name in names.items():
                first, repeated = _pulls(new, old, name, work / name)
                results[f"{image}, first"].append(first)
                results[f"{image}, repeated"].append(repeated)
            log(f"moving: round {round_number + 1} of {rounds}")
    return results


def _pulls(
    new: TestRegistry, old: TestRegistry, name: str, work: Path
) -> tuple[MovingPull, MovingPull]:
    settings = {
        "public": "1",
        "tag_cache_seconds": TAG_SECONDS,
        "fallback_registry_host": old.host,
        "fallback_registry_scheme": old.scheme,
        "fallback_repo_prefix": "old",
    }
    with crev_for(new, work / "crev", **settings) as crev, run_caching_edge(crev.url) as edge:
        pulls = []
        for pull in PULLS:
            new.clear_logs()
            old.clear_logs()
            edge.clear_log()
            seconds = timed_copy(f"{edge.host}/{name}:1", work / pull)
            pulls.append(
                MovingPull(
                    seconds,
                    len(edge.requests),
                    len(edge.misses()),
                    upstream_request_count(new),
                    upstream_request_count(old),
                )
            )
    return pulls[0], pulls[1]


def render(results: dict[str, list[MovingPull]], rounds: int) -> str:
    lines = [
        f"Moving registries: skopeo copy through a public route with a fallback and "
        f"CREV_TAG_CACHE_SECONDS={TAG_SECONDS}, behind the caching edge (medians of {rounds})",
        "",
        "| pull | time | client requests | reached crev | new registry | old registry |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, pulls in results.items():

        def median(field: str, pulls: list[MovingPull] = pulls) -> float:
            return statistics.median(getattr(pull, field) for pull in pulls)

        lines.append(
            f"| {label} | {median('seconds') * 1000:.0f} ms | {median('client_requests'):g} | "
            f"{median('crev_requests'):g} | {median('new_registry_requests'):g} | "
            f"{median('old_registry_requests'):g} |"
        )
    return "\n".join(lines)
