"""containerd's `ctr images pull` through `python -m crev` from a real registry with token auth.

containerd is the client that is hardest on a proxy's auth: it takes the realm from the 401 on
the manifest itself, asks for the union of the challenge's scopes and its own, and uses OAuth2
POST token requests whenever it has credentials.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, ToolError, repository_names, require_binaries
from rig.crev_process import CrevProcess
from tests.support.containerd import Containerd, run_containerd
from tests.support.upstream_requests import (
    Answered,
    assert_asks_upstream_as_a_direct_pull,
    assert_crev_keeps_the_token_for,
    assert_only_pulled,
    assert_refused_by_the_upstream,
    requested_scopes,
)


def all_scopes(registry: TestRegistry) -> set[str]:
    return requested_scopes(registry.issuer.requests())


def test_anonymous_pull_gives_the_pushed_digests(
    containerd: Containerd,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    tool = images["tool"]
    registry.clear_logs()
    containerd.pull(f"{crev_process.host}/tool:1")
    assert containerd.images() == {f"{crev_process.host}/tool:1": tool.digest}
    # containerd verifies every blob against its digest as it writes it to the content store.
    assert containerd.content() == {tool.digest, *tool.blobs}
    assert_only_pulled(registry, "acme/tool", crev_process)
    # Anonymous: a GET token request, unless crev answered it from the token it kept (checked
    # by `assert_only_pulled`), which only an anonymous GET is.
    assert {request.method for request in registry.issuer.requests()} <= {"GET"}


def test_platform_selection_from_the_index(
    containerd: Containerd,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    multi = images["multi"]
    amd64_child, arm64_child = multi.children
    registry.clear_logs()
    containerd.pull(f"{crev_process.host}/multi:1", "--platform", "linux/arm64")
    assert containerd.images() == {f"{crev_process.host}/multi:1": multi.digest}
    fetched = containerd.content()
    assert {multi.digest, arm64_child} <= fetched
    assert amd64_child not in fetched
    fetched_manifests = {
        entry.path.rsplit("/", 1)[-1]
        for entry in registry.access_log()
        if "/manifests/" in entry.path and entry.method == "GET"
    }
    assert amd64_child not in fetched_manifests
    assert arm64_child in fetched_manifests


def test_private_pull_with_credentials_uses_post_tokens_with_mapped_scopes(
    containerd: Containerd,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    private = images["private"]
    reference = f"{crev_process.host}/private/secret:1"
    registry.clear_logs()
    containerd.pull(reference, "--user", f"{registry.username}:{registry.password}")
    assert containerd.images() == {reference: private.digest}
    assert containerd.content() == {private.digest, *private.blobs}

    requests = registry.issuer.requests()
    assert requests, "containerd never reached the token issuer"
    assert {request.method for request in requests} == {"POST"}
    assert all(request.status == 200 for request in requests), requests
    assert {request.account for request in requests} == {registry.username}
    # containerd unions the challenge's scope with its own: both must be the same vanity name,
    # which crev maps once under the prefix.
    assert all_scopes(registry) == {"repository:acme/private/secret:pull"}
    assert not any("acme/acme/" in scope for scope in all_scopes(registry))
    granted = {scope for request in requests for scope in request.granted}
    assert granted == {"repository:acme/private/secret:pull"}
    assert repository_names(registry.access_log()) == {"acme/private/secret"}
    assert registry.password not in crev_process.log()


def test_private_pull_without_credentials_is_refused_cleanly(
    containerd: Containerd,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    reference = f"{crev_process.host}/private/secret:1"
    registry.clear_logs()
    with pytest.raises(ToolError) as refused:
        containerd.pull(reference)
    assert_refused_by_the_upstream(
        refused.value, registry, "acme/private/secret", "pull access denied", "unauthorized"
    )
    assert containerd.images() == {}
    # Anonymous: GET token requests for the mapped scope, granted nothing; or, after an earlier
    # anonymous pull of it, none: crev answers with the token it kept, which grants nothing.
    requests = registry.issuer.requests()
    if not requests:
        assert (
            assert_crev_keeps_the_token_for(registry, crev_process, "acme/private/secret") == set()
        )
        return
    assert {request.method for request in requests} == {"GET"}
    assert all_scopes(registry) == {"repository:acme/private/secret:pull"}
    assert all(request.granted == () for request in requests)


def test_private_pull_with_a_refresh_token(
    containerd: Containerd,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    private = images["private"]
    offline = httpx.get(
        f"{crev_process.url}/api/token",
        params={
            "service": registry.service,
            "scope": "repository:private/secret:pull",
            "offline_token": "true",
            "client_id": "crev-tests",
        },
        auth=(registry.username, registry.password),
    )
    assert offline.status_code == 200, offline.text
    refresh_token = offline.json()["refresh_token"]
    registry.clear_logs()
    reference = f"{crev_process.host}/private/secret:1"
    containerd.pull(reference, "--refresh", refresh_token)
    assert containerd.images() == {reference: private.digest}
    requests = registry.issuer.requests()
    assert requests
    assert {request.method for request in requests} == {"POST"}
    assert {request.form["grant_type"][0] for request in requests} == {"refresh_token"}
    assert {request.account for request in requests} == {registry.username}
    assert all_scopes(registry) == {"repository:acme/private/secret:pull"}
    assert refresh_token not in crev_process.log()


def test_large_layer_arrives_intact(
    containerd: Containerd, crev_process: CrevProcess, images: dict[str, PushedImage]
) -> None:
    big = images["big"]
    assert max(big.blob_sizes.values()) >= 16 * 1024 * 1024
    containerd.pull(f"{crev_process.host}/big:1")
    assert containerd.images() == {f"{crev_process.host}/big:1": big.digest}
    assert containerd.content() == {big.digest, *big.blobs}


def test_same_upstream_request_count_as_a_direct_pull(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    require_binaries("containerd", "ctr")
    credentials = f"{registry.username}:{registry.password}"

    def pull(label: str, reference: str) -> None:
        # A new daemon each time: nothing is in its content store, so everything is fetched.
        with run_containerd(tmp_path / label) as daemon:
            daemon.pull(reference, "--user", credentials)

    # containerd learns the realm from the manifest's 401 and never pings, and it logs in
    # (`--user`), so its token is its own: nothing to save.
    assert assert_asks_upstream_as_a_direct_pull(registry, crev_process, pull) == Answered(
        pings=0, tokens=0
    )
