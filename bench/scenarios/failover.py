"""Mirrors with failover (issue 27): the time of a `skopeo copy` through a public route with a
mirror, with the primary healthy, stopped (its port refuses connections) and never answering
(it accepts and says nothing), next to a direct pull from the mirror. Each condition pulls
twice through a fresh crev: the first pull pays for detecting the outage, the next finds the
primary's circuit open and goes to the mirror at once.

    .venv/bin/python -m bench failover            # three rounds
    .venv/bin/python -m bench failover --rounds 5
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from rig import TestRegistry, start_test_registry
from rig.crev_process import run_crev, serving_acme
from rig.upstream_front import Behaviour, UpstreamFront, run_upstream_front

from ..probes import log, timed_copy
from ..testbed import push_copy_image
from .pulls import upstream_request_count

CONDITIONS: dict[str, Callable[[UpstreamFront], None]] = {
    "primary healthy": UpstreamFront.forward,
    "primary stopped": UpstreamFront.stop_registry,
    "primary never answering": UpstreamFront.silence,
}
PULLS = ("first", "next")
DIRECT = "direct from the mirror"


class FailoverPull(NamedTuple):
    seconds: float
    # Connections the primary's front accepted (none while it is stopped).
    primary_connections: int
    # Requests the primary registry served, through the front.
    primary_requests: int
    mirror_requests: int


class FailoverRun(NamedTuple):
    pulls: dict[str, list[FailoverPull]]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def failover_pulls(rounds: int) -> FailoverRun:
    """Per condition and pull, and for a direct pull from the mirror, each round's figures."""
    pulls: dict[str, list[FailoverPull]] = {
        f"{condition}, {pull}": [] for condition in CONDITIONS for pull in PULLS
    }
    pulls[DIRECT] = []
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="crev-bench-failover-") as tmp,
        start_test_registry(Path(tmp) / "primary") as primary,
    ):
        name = push_copy_image(primary, "acme/six", "1")
        with (
            start_test_registry(Path(tmp) / "mirror", content_of=primary) as mirror,
            run_upstream_front(primary.host) as front,
        ):
            for round_number in range(rounds):
                work = Path(tmp) / f"round-{round_number}"
                for condition, switch in CONDITIONS.items():
                    first, following = _pulls(primary, mirror, front, switch, name, work)
                    pulls[f"{condition}, first"].append(first)
                    pulls[f"{condition}, next"].append(following)
                _clear(primary, mirror, front)
                seconds = timed_copy(f"{mirror.host}/acme/{name}:1", work / "direct")
                pulls[DIRECT].append(_figures(seconds, primary, mirror, front))
                log(f"failover: round {round_number + 1} of {rounds}")
    return FailoverRun(pulls, load_before, os.getloadavg())


def _pulls(
    primary: TestRegistry,
    mirror: TestRegistry,
    front: UpstreamFront,
    switch: Callable[[UpstreamFront], None],
    name: str,
    work: Path,
) -> tuple[FailoverPull, FailoverPull]:
    front.forward()
    settings = {
        **serving_acme(front.host),
        "public": "1",
        "mirror_registry_host": mirror.host,
        "mirror_registry_scheme": mirror.scheme,
        "mirror_repo_prefix": "acme",
    }
    crev_work = work / switch.__name__
    # A fresh crev for each condition: a circuit another condition opened is not this one's.
    with run_crev(crev_work / "crev", untouched=True, **settings) as crev:
        switch(front)
        figures = []
        for pull in PULLS:
            _clear(primary, mirror, front)
            seconds = timed_copy(f"{crev.host}/{name}:1", crev_work / pull)
            figures.append(_figures(seconds, primary, mirror, front))
    front.forward()
    return figures[0], figures[1]


def _clear(primary: TestRegistry, mirror: TestRegistry, front: UpstreamFront) -> None:
    primary.clear_logs()
    mirror.clear_logs()
    front.clear_counts()


def _figures(
    seconds: float, primary: TestRegistry, mirror: TestRegistry, front: UpstreamFront
) -> FailoverPull:
    return FailoverPull(
        seconds,
        sum(front.connections[behaviour] for behaviour in Behaviour),
        upstream_request_count(primary),
        upstream_request_count(mirror),
    )


def render(run: FailoverRun, rounds: int) -> str:
    before = " ".join(f"{figure:.2f}" for figure in run.load_before)
    after = " ".join(f"{figure:.2f}" for figure in run.load_after)
    lines = [
        "Mirrors with failover: skopeo copy of a 6-layer image through a public route with a "
        f"mirror, CREV_FAILOVER_SECONDS at its default (medians of {rounds})",
        f"load average before: {before}; after: {after}",
        "",
        "| pull | time | primary connections | primary requests | mirror requests |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, pulls in run.pulls.items():

        def median(field: str, pulls: list[FailoverPull] = pulls) -> float:
            return statistics.median(getattr(pull, field) for pull in pulls)

        lines.append(
            f"| {label} | {median('seconds') * 1000:.0f} ms | {median('primary_connections'):g} | "
            f"{median('primary_requests'):g} | {median('mirror_requests'):g} |"
        )
    return "\n".join(lines)
