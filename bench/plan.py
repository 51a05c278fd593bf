"""How much a comparison run measures: the full run, or a quick one that proves it works."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    rounds: int = 5  # rounds of the warm manifest measurements
    sequential: int = 500  # requests per side per round, sequential...
    sequential_cap_s: float = 4.0  # ...or as many as fit in this many seconds, if fewer
    concurrent_rounds: int = 3
    concurrent: int = 2000  # requests per side per round, over CONCURRENCY clients
    blob_rounds: int = 3
    copy_rounds: int = 7
    # The 8-layer copy's ratio holds a goal of its own (issue 31) and one round's swings by
    # about 0.15 on an idle machine: more rounds make the run's median steadier.
    eight_copy_rounds: int = 21
    cpu_copies: int = 10  # copies through crev whose CPU is summed
    cold_spawns: int = 10
    importtime_runs: int = 5
    profile_seconds: float = 12.0


FULL = Plan()
QUICK = Plan(
    rounds=3,
    sequential=100,
    sequential_cap_s=1.5,
    concurrent_rounds=2,
    concurrent=320,
    blob_rounds=1,
    copy_rounds=2,
    eight_copy_rounds=2,
    cpu_copies=3,
    cold_spawns=3,
    importtime_runs=2,
    profile_seconds=0.0,
)
