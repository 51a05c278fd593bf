"""crev/allocator.py: fixed malloc thresholds keep a relay's buffers in the heap, so freeing and
allocating them again faults no pages in; settings from the environment are left alone."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from crev import allocator
from rig.crev_process import PROJECT_ROOT

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's malloc's"
)

# Buffers of a relay's reads (256 KiB), 2 MiB of them at once as a 2 MiB layer can hold, freed
# together, over and over; prints the minor page faults of the loop.
CHURN = textwrap.dedent(
    """
    import resource, sys
    from crev.allocator import settle_thresholds
    if sys.argv[1] == "settled":
        settle_thresholds()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        buffers = [b"\\x01" * (256 * 1024) for _ in range(8)]
        del buffers
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults(mode: str, **environment: str) -> int:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in allocator.ALLOCATOR_ENVIRONMENT
    }
    result = subprocess.run(
        [sys.executable, "-c", CHURN, mode],
        cwd=PROJECT_ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout)


@glibc_only
def test_settled_thresholds_stop_the_page_faults_of_freed_and_reallocated_buffers() -> None:
    default = page_faults("default")
    settled = page_faults("settled")
    # By default each round maps (or trims and faults in again) most of its 2 MiB: hundreds of
    # faults a round.
    assert default > 200 * 100
    assert settled < default / 20


@glibc_only
def test_thresholds_chosen_in_the_environment_are_left_alone() -> None:
    # A trim threshold as low as glibc's own start, chosen by whoever runs crev, stays.
    chosen = {"MALLOC_TRIM_THRESHOLD_": str(128 * 1024)}
    assert page_faults("settled", **chosen) > 200 * 100


def test_thresholds_are_set_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    class FakeLibc:
        class mallopt:  # noqa: N801 - a C function's name
            argtypes: object = None
            restype: object = None

            def __new__(cls, parameter: int, value: int) -> int:  # type: ignore[misc]
                calls.append((parameter, value))
                return 1

    import ctypes

    monkeypatch.setattr(allocator, "_settled", False)
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc)
    for name in allocator.ALLOCATOR_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    allocator.settle_thresholds()
    allocator.settle_thresholds()
    assert calls == [
        (allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD_BYTES),
        (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD_BYTES),
        (allocator.M_ARENA_MAX, allocator.ARENAS),
    ]


# Eight threads allocating a relay's buffers at once; prints how many heaps beside the main one
# the process reserved (glibc reserves 64 MiB of address space for each, without access).
ARENA_COUNT = textwrap.dedent(
    """
    import sys, threading
    from crev.allocator import settle_thresholds
    if sys.argv[1] == "settled":
        settle_thresholds()
    barrier = threading.Barrier(8)
    def work():
        barrier.wait()
        for _ in range(200):
            buffers = [b"\\x01" * (256 * 1024) for _ in range(4)]
            del buffers
    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    heaps = 0
    for line in open("/proc/self/maps"):
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if fields[1] == "---p" and len(fields) == 5 and end - start > 16 * 1024 * 1024:
            heaps += 1
    print(heaps)
    """
)


@glibc_only
def test_settled_threads_share_one_arena() -> None:
    """Each arena keeps its free top under the trim threshold: one per thread would hold that
    much per concurrent pull."""

    def heaps(mode: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", ARENA_COUNT, mode],
            cwd=PROJECT_ROOT,
            env={k: v for k, v in os.environ.items() if k not in allocator.ALLOCATOR_ENVIRONMENT},
            capture_output=True,
            text=True,
            check=True,
        )
        return int(result.stdout)

    assert heaps("default") > allocator.ARENAS
    assert heaps("settled") <= allocator.ARENAS - 1
