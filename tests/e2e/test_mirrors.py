"""Mirrors with failover: a public route whose upstream (the primary, a real registry behind a
front a test stops, silences or has answer 503/429) has a mirror (a second real registry started
with the primary's content and a token realm of its own). skopeo, docker and ctr pull through
crev with the primary stopped, and skopeo through a route with crev's own credentials (whose
`/v2/` ping crev answers from what it learned, or fails over); with the primary never
answering, the first pull fails over within 20 s and the next within 3 s; a 503 and a 429 fail
over; the primary's 404 and 401 pass through and the mirror is never asked; after the cool-down
the primary serves again; through Vercel's runtime and edge, a mirror's answers by digest are
kept at the edge and its tag is not. Each case counts what reached each upstream.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, ToolError, push_small_image, skopeo
from rig.caching_edge import run_caching_edge
from rig.crev_process import CrevProcess, run_crev, serving_acme
from rig.images import push_private_image
from rig.registry import start_test_registry
from rig.upstream_front import Answered, Behaviour, UpstreamFront, run_upstream_front
from rig.vercel_runtime import run_vercel_app
from tests.support.containerd import Containerd
from tests.support.docker import Docker
from tests.support.layouts import check_dir_copy, copy_to_dir
from tests.support.registry_fixtures import run_test_registry

# The circuit's cool-down (crev/upstream/circuit.py), which a test of the primary's return waits
# out.
COOL_DOWN_SECONDS = 30.0


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with run_test_registry(tmp_path_factory.mktemp("primary")) as running:
        yield running


@pytest.fixture(scope="module")
def content(primary: TestRegistry) -> dict[str, PushedImage]:
    images = {
        "tool": push_small_image(primary, "acme/tool", "1"),
        "private": push_private_image(primary, "acme/private/secret", "1"),
    }
    primary.clear_logs()
    return images


@pytest.fixture(scope="module")
def mirror(
    primary: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestRegistry]:
    workdir = tmp_path_factory.mktemp("mirror")
    with start_test_registry(workdir, content_of=primary) as running:
        yield running


@pytest.fixture(scope="module")
def module_front(primary: TestRegistry) -> Iterator[UpstreamFront]:
    with run_upstream_front(primary.host) as running:
        yield running


@pytest.fixture
def front(
    module_front: UpstreamFront, primary: TestRegistry, mirror: TestRegistry
) -> UpstreamFront:
    module_front.forward()
    module_front.clear_counts()
    primary.clear_logs()
    mirror.clear_logs()
    return module_front


@pytest.fixture
def crev(front: UpstreamFront, mirror: TestRegistry, tmp_path: Path) -> Iterator[CrevProcess]:
    """A fresh crev (its circuits closed) serving `acme/` of the primary, through the front,
    with the mirror's `acme/` as its mirror."""
    with run_crev(
        tmp_path / "crev",
        untouched=True,
        **serving_acme(front.host),
        public="1",
        mirror_registry_host=mirror.host,
        mirror_registry_scheme=mirror.scheme,
        mirror_repo_prefix="acme",
    ) as running:
        yield running


def content_requests(registry: TestRegistry) -> list[tuple[str, str]]:
    """The reads of repositories the registry served (not its `/v2/` pings)."""
    return sorted(
        (record.method, record.path)
        for record in registry.access_log_records()
        if record.path != "/v2/"
    )


def direct_pull_requests(mirror: TestRegistry, tmp_path: Path) -> list[tuple[str, str]]:
    """The reads a skopeo pull of tool:1 straight from the mirror makes."""
    mirror.clear_logs()
    copy_to_dir(f"{mirror.host}/acme/tool:1", tmp_path / "direct")
    requests = content_requests(mirror)
    mirror.clear_logs()
    return requests


def failovers(crev: CrevProcess, mirror: TestRegistry) -> list[str]:
    """How the primary failed, per request the mirror answered, as crev's log names it."""
    return re.findall(rf" upstream=(\S+) mirror=\d+@{re.escape(mirror.host)}", crev.log())


# --------------------------------------------------------------------------- primary stopped


def test_skopeo_pulls_from_the_mirror_with_the_primary_stopped(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    direct = direct_pull_requests(mirror, tmp_path)
    front.stop_registry()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "tool"), content["tool"])
    # The mirror served what a direct pull asks of it, no more; the primary nothing.
    assert content_requests(mirror) == direct
    assert front.connections == {}
    assert primary.access_log() == []
    # The first request found the primary unreachable; the rest skipped it (its circuit open).
    shown = failovers(crev, mirror)
    assert shown[0] == "unreachable"
    assert set(shown[1:]) == {"skipped"}
    assert len(shown) == len(direct)


def test_docker_pulls_from_the_mirror_with_the_primary_stopped(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    docker: Docker,
) -> None:
    front.stop_registry()
    pulled = f"{crev.host}/tool:1"
    docker.pull(pulled)
    assert f"{crev.host}/tool@{content['tool'].digest}" in docker.inspect(pulled)["RepoDigests"]
    assert content_requests(mirror)
    assert front.connections == {} and primary.access_log() == []
    assert failovers(crev, mirror)[0] == "unreachable"


def test_ctr_pulls_from_the_mirror_with_the_primary_stopped(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    containerd: Containerd,
) -> None:
    front.stop_registry()
    tool = content["tool"]
    containerd.pull(f"{crev.host}/tool:1")
    assert containerd.images() == {f"{crev.host}/tool:1": tool.digest}
    assert containerd.content() == {tool.digest, *tool.blobs}
    assert content_requests(mirror)
    assert front.connections == {} and primary.access_log() == []
    assert failovers(crev, mirror)[0] == "unreachable"


@pytest.fixture
def crev_with_credentials(
    front: UpstreamFront, primary: TestRegistry, mirror: TestRegistry, tmp_path: Path
) -> Iterator[CrevProcess]:
    """A fresh crev serving `acme/` of the primary with crev's own credentials (its clients
    never log in), the mirror read with credentials of its own."""
    with run_crev(
        tmp_path / "crev",
        untouched=True,
        **serving_acme(front.host),
        upstream_username=primary.username,
        upstream_password=primary.password,
        mirror_registry_host=mirror.host,
        mirror_registry_scheme=mirror.scheme,
        mirror_repo_prefix="acme",
        mirror_upstream_username=mirror.username,
        mirror_upstream_password=mirror.password,
    ) as running:
        yield running


@pytest.mark.parametrize("pinged_before", [True, False], ids=["learned", "cold"])
def test_a_route_with_crevs_credentials_pulls_from_the_mirror_with_the_primary_stopped(
    crev_with_credentials: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
    pinged_before: bool,
) -> None:
    # The pull's `/v2/` ping used to go to the primary alone: stopped, it failed the pull.
    crev = crev_with_credentials
    if pinged_before:
        assert httpx.get(f"{crev.url}/v2/", timeout=30).status_code == 200
        primary.clear_logs()
    front.stop_registry()
    copied = copy_to_dir(f"{crev.host}/private/secret:1", tmp_path / "secret")
    check_dir_copy(copied, content["private"])
    assert primary.access_log() == []
    assert content_requests(mirror)
    if pinged_before:
        # Answered as the primary answered it before it stopped, asking no upstream (the
        # mirror's `/v2/` is crev's discovery of its realm, for the manifest's token).
        assert re.search(r"GET /v2/ 200 upstream=- ", crev.log()), crev.log()
        assert "GET /v2/ 200 upstream=unreachable" not in crev.log()
    else:
        assert failovers(crev, mirror)[0] == "unreachable", crev.log()
        assert re.search(
            rf"GET /v2/ 200 upstream=unreachable mirror=200@{mirror.host} ", crev.log()
        )


# --------------------------------------------------------------------------- never answering


def test_a_primary_that_never_answers_costs_one_wait(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    direct = direct_pull_requests(mirror, tmp_path)
    front.silence()
    started = time.monotonic()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "first"), content["tool"])
    first = time.monotonic() - started
    started = time.monotonic()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "next"), content["tool"])
    following = time.monotonic() - started
    assert first < 20, f"the first pull took {first:.1f} s"
    assert following < 3, f"the next pull took {following:.1f} s"
    # One connection to the primary, abandoned after CREV_FAILOVER_SECONDS; the mirror
    # served two direct pulls' worth.
    assert front.connections == {Behaviour.SILENT: 1}
    assert primary.access_log() == []
    assert content_requests(mirror) == sorted(direct * 2)
    shown = failovers(crev, mirror)
    assert shown[0] == "timeout" and set(shown[1:]) == {"skipped"}


# --------------------------------------------------------------------------- 503 and 429


@pytest.mark.parametrize("status", [503, 429])
def test_a_primary_answering_an_outage_or_a_rate_limit_fails_over(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
    status: int,
) -> None:
    direct = direct_pull_requests(mirror, tmp_path)
    front.answer(status)
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "tool"), content["tool"])
    assert content_requests(mirror) == direct
    # The primary was asked until it failed once: its realm's discovery and the manifest.
    assert front.answered == [
        Answered("GET", "/v2/", status),
        Answered("GET", "/v2/acme/tool/manifests/1", status),
    ]
    assert primary.access_log() == []
    shown = failovers(crev, mirror)
    assert shown[0] == str(status) and set(shown[1:]) == {"skipped"}


# --------------------------------------------------------------------------- denials stand


def test_the_primarys_404_passes_through_and_the_mirror_is_never_asked(
    crev: CrevProcess, front: UpstreamFront, primary: TestRegistry, mirror: TestRegistry
) -> None:
    with pytest.raises(ToolError) as refused:
        skopeo("inspect", "--tls-verify=false", f"docker://{crev.host}/nothing:1")
    assert "manifest unknown" in refused.value.stderr.lower()
    assert ("GET", "/v2/acme/nothing/manifests/1") in primary.access_log()
    assert {
        record.status for record in primary.access_log_records() if "nothing" in record.path
    } == {404}
    assert mirror.access_log() == [] and mirror.issuer.requests() == []
    assert " mirror=" not in crev.log()


def test_the_primarys_401_passes_through_and_the_mirror_is_never_asked(
    crev: CrevProcess, front: UpstreamFront, primary: TestRegistry, mirror: TestRegistry
) -> None:
    with pytest.raises(ToolError) as refused:
        skopeo("inspect", "--tls-verify=false", f"docker://{crev.host}/private/secret:1")
    assert "unauthorized" in refused.value.stderr.lower() or "401" in refused.value.stderr
    statuses = {record.status for record in primary.access_log_records() if "secret" in record.path}
    assert statuses == {401}
    assert mirror.access_log() == [] and mirror.issuer.requests() == []
    assert " mirror=" not in crev.log()


# --------------------------------------------------------------------------- the cool-down


def test_after_the_cool_down_the_primary_serves_again(
    crev: CrevProcess,
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    front.stop_registry()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "down"), content["tool"])
    failed_at = time.monotonic()
    assert content_requests(mirror)
    front.forward()
    # Back, but within the cool-down: still skipped.
    mirror.clear_logs()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "cooling"), content["tool"])
    assert primary.access_log() == []
    assert content_requests(mirror)
    time.sleep(max(0.0, COOL_DOWN_SECONDS - (time.monotonic() - failed_at)) + 0.5)
    mirror.clear_logs()
    check_dir_copy(copy_to_dir(f"{crev.host}/tool:1", tmp_path / "back"), content["tool"])
    assert ("GET", "/v2/acme/tool/manifests/1") in primary.access_log()
    assert mirror.access_log() == []


# --------------------------------------------------------------------------- Vercel's runtime


def test_through_vercels_runtime_the_edge_keeps_the_mirrors_digests_but_not_its_tag(
    front: UpstreamFront,
    primary: TestRegistry,
    mirror: TestRegistry,
    content: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    front.stop_registry()
    with (
        run_vercel_app(
            tmp_path / "app",
            **serving_acme(front.host),
            public="1",
            mirror_registry_host=mirror.host,
            mirror_registry_scheme=mirror.scheme,
            mirror_repo_prefix="acme",
        ) as app,
        run_caching_edge(app.url) as edge,
    ):
        tool = content["tool"]
        check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "first"), tool)
        assert content_requests(mirror)
        mirror.clear_logs()
        edge.clear_log()
        check_dir_copy(copy_to_dir(f"{edge.host}/tool:1", tmp_path / "second"), tool)
        # Answers by digest came from the edge; the tag, which CREV_TAG_CACHE_SECONDS does not
        # let it keep, reached crev and the mirror again.
        assert [request.target for request in edge.misses()] == ["/v2/tool/manifests/1"]
        assert content_requests(mirror) == [("GET", "/v2/acme/tool/manifests/1")]
    assert front.connections == {} and primary.access_log() == []
