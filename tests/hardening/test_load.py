"""A short load test: concurrent pulls through `python -m crev` from a stand-in registry, with
zero errors, zero wrong digests and flat memory.

The stand-in (`tests/support/static_registry.py`) serves images built in memory, so the test
needs no registry installed and measures crev, not the upstream; `python -m bench load` is the
longer run, against the real registry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rig.crev_process import CrevProcess, run_crev, serving_acme
from rig.images import (
    DEFAULT_ARTIFACT_TYPE,
    DEFAULT_LARGE_SIZE,
    build_artifact,
    build_large_image,
    build_small_image,
)
from rig.pull_load import pull_plan, run_load
from tests.support.static_registry import TOKEN, StaticRegistry, static_registry

DURATION_S = 8.0
WARMUP_S = 1.0
CONCURRENCY = 8
# crev's resident memory may not grow by more than this from the first half of the run to the
# second: a leak of even a small buffer per request would exceed it over thousands of requests.
RSS_GROWTH_LIMIT_KIB = 8 * 1024


@pytest.fixture(scope="module")
def registry() -> Iterator[StaticRegistry]:
    """The stand-in, serving the shapes of the standard test images: small images, a two-platform
    index, an artifact and a 32 MiB layer."""
    content = StaticRegistry()
    content.add_image("acme/tool", "1", build_small_image("acme/tool:1"))
    content.add_index(
        "acme/multi",
        "1",
        [build_small_image("acme/multi:1", architecture=arch) for arch in ("amd64", "arm64")],
    )
    for name in ("acme/docker", "acme/private/secret", "acme/many"):
        content.add_image(name, "1", build_small_image(f"{name}:1"))
    content.add_image(
        "acme/artifact", "1", build_artifact("acme/artifact:1", DEFAULT_ARTIFACT_TYPE)
    )
    content.add_image("acme/big", "1", build_large_image("acme/big:1", DEFAULT_LARGE_SIZE))
    with static_registry(content) as served:
        yield served


@pytest.fixture(scope="module")
def crev(
    registry: StaticRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    with run_crev(tmp_path_factory.mktemp("load"), **serving_acme(registry.host)) as crev:
        yield crev


def test_concurrent_pulls_are_exact_and_memory_stays_flat(
    crev: CrevProcess, registry: StaticRegistry
) -> None:
    plan = pull_plan(registry.images, max_blob_bytes=64 * 1024 * 1024)
    assert {fetch.kind for fetch in plan} == {"manifest-tag", "manifest-digest", "blob"}
    result = run_load(
        crev.url,
        plan,
        lambda: TOKEN,
        duration=DURATION_S,
        concurrency=CONCURRENCY,
        pid=crev.process.pid,
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
