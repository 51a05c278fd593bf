"""`podman pull` (root, vfs storage) through `python -m crev` from a registry with token auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    PushedImage,
    TestRegistry,
    ToolError,
    fetch_manifest,
    repository_names,
    require_binaries,
)
from tests.support.crev_process import CrevProcess
from tests.support.podman import Podman, fresh_podman


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    require_binaries("podman")
    with fresh_podman(tmp_path / "podman") as fresh:
        yield fresh


def config_digest(registry: TestRegistry, name: str, digest: str) -> str:
    manifest, _ = fetch_manifest(registry, name, digest)
    return json.loads(manifest)["config"]["digest"]


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
    assert repository_names(registry.access_log()) == {"acme/tool"}
    scopes = {scope for request in registry.issuer.requests() for scope in request.scopes}
    assert scopes == {"repository:acme/tool:pull"}


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
    message = refused.value.stderr.lower()
    assert "unauthorized" in message or "authentication required" in message, message
    # A clean refusal: the upstream said 401 and crev relayed it, no proxy error in between.
    assert not any(code in message for code in ("500", "502", "504", "internal server error"))
    statuses = {
        record.status
        for record in registry.access_log_records()
        if "/acme/private/secret/manifests/" in record.path
    }
    assert statuses == {401}
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
    registry.clear_logs()
    with fresh_podman(tmp_path / "direct") as direct:
        direct.pull(f"{registry.host}/acme/multi:1")
    direct_log, direct_tokens = registry.access_log(), registry.issuer.requests()
    registry.clear_logs()
    with fresh_podman(tmp_path / "proxied") as proxied:
        proxied.pull(f"{crev_process.host}/multi:1")
    proxied_log, proxied_tokens = registry.access_log(), registry.issuer.requests()
    assert len(direct_log) > 0 and len(direct_tokens) > 0
    assert (len(proxied_log), len(proxied_tokens)) == (len(direct_log), len(direct_tokens)), (
        direct_log,
        proxied_log,
    )
    # The very same upstream requests, up to the order of the parallel blob fetches.
    assert sorted(proxied_log) == sorted(direct_log)
