"""Pull through `python -m crev` from a real registry with token auth, with skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from rig import PushedImage, TestRegistry, repository_names, skopeo
from rig.crev_process import CrevProcess
from tests.support.layouts import (
    check_copy_of_every_platform,
    check_private_copy_needs_credentials,
    copy_to_oci,
    missing_blobs,
)
from tests.support.upstream_requests import (
    Answered,
    assert_asks_upstream_as_a_direct_pull,
    assert_only_pulled,
)


def test_copy_through_crev_gives_the_pushed_digests(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    tool = images["tool"]
    registry.clear_logs()
    index = copy_to_oci(
        f"docker://{crev_process.host}/tool:1", tmp_path / "tool", "--preserve-digests"
    )
    assert index["manifests"][0]["digest"] == tool.digest
    assert not missing_blobs(tmp_path / "tool", tool.blobs)
    assert_only_pulled(registry, "acme/tool", crev_process)


def test_inspect_by_digest_and_raw_manifest_is_byte_identical(
    crev_process: CrevProcess, images: dict[str, PushedImage]
) -> None:
    tool = images["tool"]
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{crev_process.host}/tool@{tool.digest}"
    )
    assert raw.stdout.encode() == tool.manifest


def test_list_tags_shows_vanity_name(
    crev_process: CrevProcess, images: dict[str, PushedImage]
) -> None:
    listed = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{crev_process.host}/many").stdout
    )
    assert listed["Repository"] == f"{crev_process.host}/many"
    assert sorted(listed["Tags"]) == sorted(images["many"].tags)


def test_multi_platform_index_and_platform_selection(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    multi = images["multi"]
    check_copy_of_every_platform(f"docker://{crev_process.host}/multi:1", multi, tmp_path / "all")
    arm = copy_to_oci(
        f"docker://{crev_process.host}/multi:1",
        tmp_path / "arm",
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
    )
    assert arm["manifests"][0]["digest"] in multi.children


def test_private_image_needs_credentials(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    check_private_copy_needs_credentials(
        f"docker://{crev_process.host}/private/secret:1", images["private"], registry, tmp_path
    )
    assert registry.password not in crev_process.log()


def test_names_outside_the_prefix_are_never_reached(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    registry.clear_logs()
    for path in (
        "/v2/../other/thing/manifests/1",
        "/v2/%2e%2e/other/thing/manifests/1",
        "/v2/_catalog",
    ):
        response = httpx.get(f"{crev_process.url}{path}")
        assert response.status_code in (400, 404), path
        assert response.json()["errors"][0]["code"] in ("NAME_INVALID", "UNSUPPORTED")
    # `other/thing` through crev is `acme/other/thing` upstream, which does not exist.
    response = httpx.get(f"{crev_process.url}/v2/other/thing/manifests/1")
    assert response.status_code == 401
    assert all(name.startswith("acme/") for name in repository_names(registry.access_log()))


def test_same_upstream_request_count_as_a_direct_pull(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    def pull(label: str, reference: str) -> None:
        copy_to_oci(f"docker://{reference}", tmp_path / label, "--all")

    # skopeo pings once and asks for an anonymous token once, and a warm crev answers both: two
    # upstream round trips fewer than direct.
    assert assert_asks_upstream_as_a_direct_pull(registry, crev_process, pull) == Answered(
        pings=1, tokens=1
    )
