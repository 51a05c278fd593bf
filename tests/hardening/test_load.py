"""A short load test: concurrent pulls through `python -m crev` from the real registry, with
zero errors, zero wrong digests and flat memory. `python -m bench load` is the same, longer."""

from __future__ import annotations

from tests.support import PushedImage, TestRegistry
from tests.support.crev_process import CrevProcess
from tests.support.pull_load import pull_plan, run_load, scopes_for

DURATION_S = 8.0
WARMUP_S = 1.0
CONCURRENCY = 8
# crev's resident memory may not grow by more than this from the first half of the run to the
# second: a leak of even a small buffer per request would exceed it over thousands of requests.
RSS_GROWTH_LIMIT_KIB = 8 * 1024


def test_concurrent_pulls_are_exact_and_memory_stays_flat(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    pulled = [image for key, image in images.items() if key != "other"]
    plan = pull_plan(pulled, max_blob_bytes=64 * 1024 * 1024)
    assert {fetch.kind for fetch in plan} == {"manifest-tag", "manifest-digest", "blob"}
    scopes = scopes_for(pulled)
    result = run_load(
        crev_process.url,
        plan,
        lambda: registry.token(*scopes),
        duration=DURATION_S,
        concurrency=CONCURRENCY,
        pid=crev_process.process.pid,
        warmup=WARMUP_S,
    )
    summary = result.summary()
    print(summary)  # shown with -s, and in the report of a failure
    assert result.requests > 100, summary
    assert result.errors == 0, summary
    assert result.wrong_digests == 0, summary
    assert set(result.by_kind) == {"manifest-tag", "manifest-digest", "blob"}, summary
    first, second = result.first_half_peak_kib, result.second_half_peak_kib
    assert first > 0 and second > 0, summary
    assert second - first <= RSS_GROWTH_LIMIT_KIB, summary
