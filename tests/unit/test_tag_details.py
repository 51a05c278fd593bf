"""What the page shows of its first tags (crev/tag_details.py), read through a `Fetch` that
answers from documents built as the test registry's images are: which requests it makes, and
what it makes of their answers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from crev.errors import UpstreamError
from crev.messages import Headers
from crev.names import Digest
from crev.tag_details import (
    COSIGN_SIGNATURE,
    MAX_DETAILED_TAGS,
    OCI_INDEX,
    Fetched,
    ImageDetails,
    fetch_details,
    is_cosign_tag,
    signature_tag,
    tags_to_detail,
)
from rig.cosign import build_cosign_signature
from rig.images import (
    Blob,
    BuiltManifest,
    build_artifact,
    build_small_image,
    canonical_json,
    make_index,
)

FILTER = f"?artifactType={quote(COSIGN_SIGNATURE, safe='')}"


class Upstream:
    """A repository's documents by path, answered as a registry would, and every path asked."""

    def __init__(self) -> None:
        self.documents: dict[str, Blob] = {}
        self.statuses: dict[str, int] = {}
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def add_image(self, tag: str | None, built: BuiltManifest) -> Digest:
        if tag is not None:
            self.documents[f"manifests/{tag}"] = built.manifest
        self.documents[f"manifests/{built.manifest.digest}"] = built.manifest
        for blob in built.blobs:
            self.documents[f"blobs/{blob.digest}"] = blob
        return Digest(built.manifest.digest)

    def add_index(self, tag: str, children: list[BuiltManifest]) -> Digest:
        for child in children:
            self.add_image(None, child)
        index = make_index(children)
        self.documents[f"manifests/{tag}"] = index
        return Digest(index.digest)

    def referrers(self, digest: Digest, *manifests: BuiltManifest) -> None:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                built.manifest.descriptor(artifactType=_artifact_type(built)) for built in manifests
            ],
        }
        self.documents[f"referrers/{digest.value}{FILTER}"] = Blob(OCI_INDEX, canonical_json(index))

    def __call__(self, path: str, accept: str, limit: int, timeout: float) -> Fetched:
        with self._lock:
            self.asked.append(path)
        assert timeout > 0
        document = self.documents.get(path)
        if document is None:
            return Fetched(self.statuses.get(path.partition("/")[0], 404), Headers(), b"")
        assert len(document.data) <= limit
        return Fetched(200, Headers([("Content-Type", document.media_type)]), document.data)


def _artifact_type(built: BuiltManifest) -> str:
    import json

    return str(json.loads(built.manifest.data)["artifactType"])


def details(upstream: Upstream, tags: list[str], **kwargs: object) -> list:  # type: ignore[type-arg]
    options: dict[str, object] = {"tag_list_complete": True, "seconds": 5.0, **kwargs}
    listed = options.pop("all_tags", tags)
    return fetch_details(upstream, tags, listed, **options)  # type: ignore[arg-type]


def test_an_image_s_digest_platform_size_and_date() -> None:
    upstream = Upstream()
    built = build_small_image("acme/tool:1", architecture="arm64")
    digest = upstream.add_image("1", built)
    (tag,) = details(upstream, ["1"])
    layers = sum(blob.size for blob in built.blobs[1:])
    assert tag.details == ImageDetails(
        digest, ("linux/arm64",), layers, None, datetime(2024, 1, 1, tzinfo=UTC)
    )
    # Not signed: no `.sig` tag in the list, and a registry without a referrers API.
    assert tag.signed is False
    config = built.blobs[0].digest
    assert upstream.asked == ["manifests/1", f"blobs/{config}", f"referrers/{digest}{FILTER}"]


def test_an_index_shows_its_platforms_and_the_size_of_linux_amd64() -> None:
    upstream = Upstream()
    children = [build_small_image("acme/multi:1", architecture=arch) for arch in ("arm64", "amd64")]
    digest = upstream.add_index("1", children)
    (tag,) = details(upstream, ["1"])
    amd64 = children[1]
    assert tag.details == ImageDetails(
        digest,
        ("linux/arm64", "linux/amd64"),
        sum(blob.size for blob in amd64.blobs[1:]),
        "linux/amd64",
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert upstream.asked == [
        "manifests/1",
        f"manifests/{amd64.manifest.digest}",
        f"blobs/{amd64.blobs[0].digest}",
        f"referrers/{digest}{FILTER}",
    ]


def test_a_sig_tag_in_the_list_says_signed_without_a_request() -> None:
    upstream = Upstream()
    digest = upstream.add_image("1", build_small_image("acme/signed:1"))
    (tag,) = details(upstream, ["1"], all_tags=["1", signature_tag(digest)])
    assert tag.signed is True
    assert not any(path.startswith("referrers/") for path in upstream.asked)


def test_a_cosign_referrer_says_signed() -> None:
    upstream = Upstream()
    built = build_small_image("acme/signed:1")
    digest = upstream.add_image("1", built)
    *_, referrer = build_cosign_signature(built.manifest, "acme.dev/signed")
    upstream.referrers(digest, referrer)
    (tag,) = details(upstream, ["1"])
    assert tag.signed is True


def test_a_registry_that_ignores_the_filter_lists_other_referrers_which_are_no_signature() -> None:
    upstream = Upstream()
    built = build_small_image("acme/tool:1")
    digest = upstream.add_image("1", built)
    upstream.referrers(digest, build_artifact("sbom", "application/spdx+json"))
    (tag,) = details(upstream, ["1"])
    assert tag.signed is False


def test_after_a_referrers_404_no_other_digest_asks_and_the_tag_list_decides() -> None:
    upstream = Upstream()
    first = upstream.add_image("2", build_small_image("acme/tool:2"))
    second = upstream.add_image("1", build_small_image("acme/tool:1"))
    results = details(upstream, ["2", "1"], all_tags=["2", "1", signature_tag(second)])
    assert [tag.signed for tag in results] == [False, True]
    assert [path for path in upstream.asked if path.startswith("referrers/")] == [
        f"referrers/{first}{FILTER}"
    ]


def test_a_tag_list_not_read_to_its_end_asks_for_the_sig_tag_itself() -> None:
    upstream = Upstream()
    built = build_small_image("acme/signed:1")
    digest = upstream.add_image("1", built)
    upstream.add_image(signature_tag(digest), build_cosign_signature(built.manifest, "x")[3])
    other = upstream.add_image("0", build_small_image("acme/tool:0"))
    results = details(upstream, ["1", "0"], tag_list_complete=False)
    assert [tag.signed for tag in results] == [True, False]
    assert f"manifests/{signature_tag(digest)}" in upstream.asked
    assert f"manifests/{signature_tag(other)}" in upstream.asked


def test_a_referrers_answer_that_is_neither_200_nor_404_leaves_it_unknown() -> None:
    upstream = Upstream()
    upstream.add_image("1", build_small_image("acme/tool:1"))
    upstream.statuses["referrers"] = 500
    (tag,) = details(upstream, ["1"])
    assert tag.signed is None


def test_tags_with_one_digest_cost_one_config_and_one_referrers_request() -> None:
    upstream = Upstream()
    built = build_small_image("acme/many")
    upstream.add_image("a", built)
    for tag in ("b", "c"):
        upstream.documents[f"manifests/{tag}"] = built.manifest
    results = details(upstream, ["a", "b", "c"])
    assert len({tag.details for tag in results}) == 1
    assert sorted(upstream.asked) == sorted(
        [
            "manifests/a",
            "manifests/b",
            "manifests/c",
            f"blobs/{built.blobs[0].digest}",
            f"referrers/{built.manifest.digest}{FILTER}",
        ]
    )


@pytest.mark.parametrize(
    ("status", "problem"), [(404, "the registry answered 404"), (401, "the registry answered 401")]
)
def test_a_tag_whose_manifest_is_refused_says_why(status: int, problem: str) -> None:
    upstream = Upstream()
    upstream.statuses["manifests"] = status
    (tag,) = details(upstream, ["1"])
    assert (tag.details, tag.problem) == (None, problem)


def test_an_upstream_failure_is_the_tag_s_problem_not_the_page_s() -> None:
    def failing(path: str, accept: str, limit: int, timeout: float) -> Fetched:
        raise UpstreamError("upstream registry.example is unreachable: refused")

    (tag,) = fetch_details(failing, ["1"], ["1"], tag_list_complete=True, seconds=5)
    assert tag.problem == "upstream registry.example is unreachable: refused"


def test_details_not_read_by_the_deadline_are_left_out_without_waiting() -> None:
    upstream = Upstream()
    upstream.add_image("1", build_small_image("acme/tool:1"))
    released = threading.Event()

    def slow(path: str, accept: str, limit: int, timeout: float) -> Fetched:
        if path == "manifests/2":
            released.wait(10)
        return upstream(path, accept, limit, timeout)

    started = time.monotonic()
    fast, late = fetch_details(slow, ["1", "2"], ["1", "2"], tag_list_complete=True, seconds=0.5)
    elapsed = time.monotonic() - started
    released.set()
    assert elapsed < 3
    assert fast.details is not None
    assert (late.details, late.problem) == (None, "not read in time")


def test_the_tags_detailed_are_the_first_ten_but_cosign_s_own() -> None:
    sig = "sha256-" + "a" * 64 + ".sig"
    att = "sha256-" + "b" * 64 + ".att"
    ordered = ["latest", sig, att, "-bad", *(f"1.{n}" for n in range(20, 0, -1))]
    assert tags_to_detail(ordered) == ["latest", *(f"1.{n}" for n in range(20, 11, -1))]
    assert len(tags_to_detail(ordered)) == MAX_DETAILED_TAGS
    assert is_cosign_tag(sig) and is_cosign_tag(att)
    assert not is_cosign_tag("sha256-abc.sig")


def test_a_zero_date_says_nothing() -> None:
    upstream = Upstream()
    config = Blob(
        "application/vnd.oci.image.config.v1+json",
        canonical_json({"created": "0001-01-01T00:00:00Z", "os": "linux", "architecture": "amd64"}),
    )
    manifest = Blob(
        "application/vnd.oci.image.manifest.v1+json",
        canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config.descriptor(),
                "layers": [],
            }
        ),
    )
    upstream.add_image("1", BuiltManifest(manifest, (config,)))
    (tag,) = details(upstream, ["1"])
    assert tag.details is not None
    assert (tag.details.created, tag.details.size) == (None, 0)


def test_the_worst_case_is_the_readme_s_count() -> None:
    """Ten distinct indexes, a registry without a referrers API and a tag list cut short: 10
    manifests, then per image a child manifest, a config and a `.sig` tag, and one referrers
    request (docs/configuration.md: 10 + 10 x 4 + 1 with a request to storage per config, none
    here)."""
    upstream = Upstream()
    tags = [f"1.{n}" for n in range(12)]
    for tag in tags:
        upstream.add_index(tag, [build_small_image(f"acme/tool:{tag}", architecture="amd64")])
    results = details(upstream, tags_to_detail(tags), tag_list_complete=False)
    assert len(results) == MAX_DETAILED_TAGS
    assert all(tag.details is not None and tag.signed is False for tag in results)
    kinds = [
        path.split("/")[0] + (".sig" if path.endswith(".sig") else "") for path in upstream.asked
    ]
    assert len(upstream.asked) == MAX_DETAILED_TAGS + MAX_DETAILED_TAGS * 3 + 1
    assert kinds.count("referrers") == 1
    assert kinds.count("manifests.sig") == MAX_DETAILED_TAGS
