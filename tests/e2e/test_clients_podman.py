"""`podman pull` (root, vfs storage) through `python -m crev` from a registry with token auth."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig import PushedImage, TestRegistry, ToolError, config_digest, require_binaries
from rig.crev_process import CrevProcess
from tests.support.podman import Podman, fresh_podman
from tests.support.upstream_requests import (
    Answered,
    assert_asks_upstream_as_a_direct_pull,
    assert_only_pulled,
    assert_refused_by_the_upstream,
)


def test_anonymous_pull_gives_the_pushed_digests(
    podman: Podman,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    tool = images["tool"]
    registry.clear_logs()
    podman.pull(f"{crev_process.host}/tool:1")
    inspected = podman.inspect(f"{crev_process.host}/tool:1")
    assert inspected["Digest"] == tool.digest
    # The image ID is the config digest, which podman checks against the bytes it fetched.
    assert "sha256:" + inspected["Id"] == tool.blobs[0]
    assert f"{crev_process.host}/tool@{tool.digest}" in inspected["RepoDigests"]
    assert inspected["RootFS"]["Layers"], inspected["RootFS"]
    assert_only_pulled(registry, "acme/tool", crev_process)


def test_platform_selection_from_the_index(
    podman: Podman,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    multi = images["multi"]
    amd64_child, arm64_child = multi.children
    podman.pull(f"{crev_process.host}/multi:1", "--arch", "arm64")
    inspected = podman.inspect(f"{crev_process.host}/multi:1")
    assert inspected["Architecture"] == "arm64"
    assert inspected["Digest"] == multi.digest
    assert f"{crev_process.host}/multi@{arm64_child}" in inspected["RepoDigests"]
    assert f"{crev_process.host}/multi@{amd64_child}" not in inspected["RepoDigests"]
    assert "sha256:" + inspected["Id"] == config_digest(registry, multi.name, arm64_child)


def test_private_pull_needs_credentials(
    podman: Podman,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    private = images["private"]
    reference = f"{crev_process.host}/private/secret:1"
    registry.clear_logs()
    with pytest.raises(ToolError) as refused:
        podman.pull(reference)
    assert_refused_by_the_upstream(
        refused.value, registry, "acme/private/secret", "unauthorized", "authentication required"
    )
    with pytest.raises(ToolError):
        podman.inspect(reference)

    podman.pull(reference, "--creds", f"{registry.username}:{registry.password}")
    inspected = podman.inspect(reference)
    assert inspected["Digest"] == private.digest
    assert "sha256:" + inspected["Id"] == private.blobs[0]
    accounts = {request.account for request in registry.issuer.requests() if request.status == 200}
    assert registry.username in accounts
    assert registry.password not in crev_process.log()


def test_same_upstream_request_count_as_a_direct_pull(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    require_binaries("podman")

    def pull(label: str, reference: str) -> None:
        with fresh_podman(tmp_path / label) as fresh:
            fresh.pull(reference)

    # podman pings once and asks for an anonymous token once, and a warm crev answers both: two
    # upstream round trips fewer than direct.
    assert assert_asks_upstream_as_a_direct_pull(registry, crev_process, pull) == Answered(
        pings=1, tokens=1
    )
