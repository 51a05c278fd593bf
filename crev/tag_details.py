"""What the page shows of the tags people look for first: each one's digest, the platforms of a
multi-platform index, the compressed size and the date the image was built (its config's
`created`), and whether cosign signed it.

Everything is read through one narrow door, a `Fetch` that sends an authorized GET for a path
under the repository upstream and reads the answer, so this module knows the registry API's
documents and nothing of routes, tokens or transports. The requests are bounded: one manifest
per tag, then per distinct digest at most one child manifest (an index's), one config blob, and
one referrers request (none once the registry has said it has no referrers API), plus one
`.sig` tag where the tag list was not read to its end. They run a few at a time, and whatever
has not arrived by the deadline is left out of the page rather than waited for.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

from .errors import CrevError, UpstreamTimeoutError
from .messages import Headers
from .names import Digest, is_digest, is_tag

# The tags shown with details: `latest` and the newest versions.
MAX_DETAILED_TAGS = 10
# Upstream requests in flight at once for one page.
PARALLEL_REQUESTS = 4
# The most a page waits for details after its tag list, whatever the route's timeout.
DETAILS_SECONDS = 5.0
# Manifests and configs are small documents; one this large is not read for a page.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
CONFIG_ACCEPT = "application/vnd.oci.image.config.v1+json, application/json, */*"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
# What cosign gives a signature it attaches as a referrer (OCI 1.1).
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
# The tags cosign writes beside an image where a registry has no referrers API.
_COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(?:sig|att|sbom)")
# The platform a multi-platform image's size and date are shown for, where it has it.
PREFERRED_PLATFORM = "linux/amd64"
NOT_IN_TIME = "not read in time"


class Fetched(NamedTuple):
    """An upstream's answer to a GET, its body read (where the status is 200, or a 404's
    registry error)."""

    status: int
    headers: Headers
    body: bytes


class Fetch(Protocol):
    """Send an authorized GET for `path` under the repository upstream (`manifests/1`,
    `blobs/sha256:...`, `referrers/sha256:...?artifactType=...`) within `timeout` seconds,
    reading a body of at most `limit` bytes. Failures raise a RegistryError."""

    def __call__(self, path: str, accept: str, limit: int, timeout: float) -> Fetched: ...


class ImageDetails(NamedTuple):
    """What one manifest says of the image it names."""

    digest: Digest
    # `os/architecture[/variant]` of each image an index holds, or of the one image.
    platforms: tuple[str, ...] = ()
    # The compressed size of the image's layers; for an index, of `size_platform`'s image.
    size: int | None = None
    size_platform: str | None = None
    created: datetime | None = None


class TagDetails(NamedTuple):
    tag: str
    details: ImageDetails | None
    # True: cosign signed it; False: no signature found; None: not known.
    signed: bool | None = None
    # Why there are no details, in words for the page.
    problem: str | None = None


def is_cosign_tag(tag: str) -> bool:
    """Whether a tag is one cosign writes for a signature, attestation or SBOM."""
    return _COSIGN_TAG.fullmatch(tag) is not None


def tags_to_detail(ordered: Sequence[str]) -> list[str]:
    """The first tags of a list ordered for people (`latest`, then the newest versions),
    leaving out cosign's own."""
    return [tag for tag in ordered if is_tag(tag) and not is_cosign_tag(tag)][:MAX_DETAILED_TAGS]


def signature_tag(digest: Digest) -> str:
    """The tag cosign writes a signature of `digest` under, where there is no referrers API."""
    algorithm, _, encoded = digest.value.partition(":")
    return f"{algorithm}-{encoded}.sig"


def fetch_details(
    fetch: Fetch,
    tags: Sequence[str],
    all_tags: Iterable[str],
    *,
    tag_list_complete: bool,
    seconds: float,
) -> list[TagDetails]:
    """The details of `tags`, in their order, fetched within `seconds`. `all_tags` is the tag
    list as read, where cosign's `.sig` tags say what is signed without another request."""
    deadline = _Deadline(seconds)
    known_tags = frozenset(all_tags)
    # Not a `with` block: leaving one waits for every request in flight, past the deadline.
    runner = _Runner(
        ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="crev-page"), deadline
    )
    try:
        manifests = runner.map(lambda tag: _manifest(fetch, f"manifests/{tag}", deadline), tags)
        by_digest = {
            manifest.digest: manifest
            for manifest in manifests.values()
            if isinstance(manifest, _Manifest)
        }
        digests = list(by_digest)
        images = runner.map(lambda digest: _image(fetch, by_digest[digest], deadline), digests)
        signatures = _signatures(
            fetch, runner, digests, known_tags, tag_list_complete=tag_list_complete
        )
    finally:
        runner.abandon()
    results = []
    for tag in tags:
        manifest = manifests.get(tag)
        if not isinstance(manifest, _Manifest):
            results.append(TagDetails(tag, None, problem=manifest or NOT_IN_TIME))
            continue
        image = images.get(manifest.digest)
        details = image if isinstance(image, ImageDetails) else ImageDetails(manifest.digest)
        results.append(TagDetails(tag, details, signatures.get(manifest.digest)))
    return results


# ------------------------------------------------------------------------------ running bounded

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._at - time.monotonic()


class _Runner:
    """Runs requests a few at a time, each batch until the page's deadline and no longer."""

    def __init__(self, pool: ThreadPoolExecutor, deadline: _Deadline) -> None:
        self._pool = pool
        self.deadline = deadline

    def map(
        self, function: Callable[[_Item], _Result | str], items: Iterable[_Item]
    ) -> dict[_Item, _Result | str]:
        """Each item's result, or the words for why it has none; items whose request did not
        end in time are missing."""
        futures = {item: self._pool.submit(function, item) for item in items}
        if not futures:
            return {}
        wait(futures.values(), timeout=max(0.0, self.deadline.remaining()))
        results: dict[_Item, _Result | str] = {}
        for item, future in futures.items():
            if future.done() and not future.cancelled():
                error = future.exception()
                if isinstance(error, CrevError):
                    results[item] = error.message
                elif error is not None:
                    raise error
                else:
                    results[item] = future.result()
            else:
                future.cancel()
        return results

    def abandon(self) -> None:
        """Leave requests still in flight to end by their own timeout, unwaited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------- the documents


class _Manifest(NamedTuple):
    digest: Digest
    media_type: str
    document: dict[str, Any]


def _manifest(fetch: Fetch, path: str, deadline: _Deadline) -> _Manifest | str:
    answer = fetch(path, MANIFEST_ACCEPT, MAX_DOCUMENT_BYTES, _timeout(deadline))
    if answer.status != 200:
        return f"the registry answered {answer.status}"
    document = _json_object(answer.body)
    if document is None:
        return "the manifest is not JSON"
    media_type = document.get("mediaType")
    if not isinstance(media_type, str):
        media_type = (answer.headers.get("content-type") or "").split(";")[0].strip()
    return _Manifest(Digest("sha256:" + sha256(answer.body).hexdigest()), media_type, document)


def _image(fetch: Fetch, manifest: _Manifest, deadline: _Deadline) -> ImageDetails:
    """The details of a manifest: an index's platforms, and the size and date of its preferred
    platform's image (one request for that manifest), or of the image itself."""
    if manifest.media_type in INDEX_TYPES or "manifests" in manifest.document:
        children = _children(manifest.document)
        platforms = tuple(platform for platform, _ in children)
        shown = next((c for c in children if c[0] == PREFERRED_PLATFORM), None)
        shown = shown or (children[0] if children else None)
        if shown is None:
            return ImageDetails(manifest.digest, platforms)
        child = _manifest(fetch, f"manifests/{shown[1]}", deadline)
        if not isinstance(child, _Manifest):
            return ImageDetails(manifest.digest, platforms)
        size, _, created = _single(fetch, child, deadline)
        return ImageDetails(manifest.digest, platforms, size, shown[0], created)
    size, platform, created = _single(fetch, manifest, deadline)
    return ImageDetails(manifest.digest, (platform,) if platform else (), size, None, created)


def _children(index: dict[str, Any]) -> list[tuple[str, str]]:
    """An index's images as (platform, digest), leaving out what is not a runnable image
    (buildx's attestations are `unknown/unknown`)."""
    children = []
    for entry in _list(index.get("manifests")):
        platform = _platform(entry.get("platform"))
        digest = entry.get("digest")
        if (
            platform
            and platform != "unknown/unknown"
            and isinstance(digest, str)
            and is_digest(digest)
        ):
            children.append((platform, digest))
    return children


def _single(
    fetch: Fetch, manifest: _Manifest, deadline: _Deadline
) -> tuple[int | None, str | None, datetime | None]:
    """An image manifest's compressed size, and its config's platform and date."""
    layers = manifest.document.get("layers")
    sizes = [layer.get("size") for layer in _list(layers)]
    # No size where a layer does not say its own, or where there are no layers to add up (an
    # index inside an index).
    size = None
    if isinstance(layers, list) and all(isinstance(s, int) for s in sizes):
        size = sum(s for s in sizes if isinstance(s, int))
    config = manifest.document.get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(digest, str) or not is_digest(digest):
        return size, None, None
    answer = fetch(f"blobs/{digest}", CONFIG_ACCEPT, MAX_DOCUMENT_BYTES, _timeout(deadline))
    document = _json_object(answer.body) if answer.status == 200 else None
    if document is None:
        return size, None, None
    return size, _platform(document), _date(document.get("created"))


def _signatures(
    fetch: Fetch,
    runner: _Runner,
    digests: list[Digest],
    tags: frozenset[str],
    *,
    tag_list_complete: bool,
) -> dict[Digest, bool | None]:
    """Whether cosign signed each digest: a `.sig` tag in the tag list says so at no cost;
    otherwise the referrers API is asked, first for one digest alone, since a registry without
    it answers 404 and the others need not ask; then, where the tag list was not read to its
    end, the `.sig` tag itself."""
    signed: dict[Digest, bool | None] = {
        digest: True for digest in digests if signature_tag(digest) in tags
    }
    asking = [digest for digest in digests if digest not in signed]
    if not asking:
        return signed

    def referrers(digest: Digest) -> bool | int:
        return _referrers(fetch, digest, runner.deadline)

    answers = runner.map(referrers, asking[:1])
    if answers.get(asking[0]) != 404:
        answers.update(runner.map(referrers, asking[1:]))
        signed.update({d: a for d, a in answers.items() if isinstance(a, bool)})
        return signed
    # No referrers API: the tag scheme is all there is, and the list read says it all.
    if tag_list_complete:
        signed.update(dict.fromkeys(asking, False))
        return signed
    tagged = runner.map(lambda digest: _has_signature_tag(fetch, digest, runner.deadline), asking)
    signed.update({d: a for d, a in tagged.items() if isinstance(a, bool)})
    return signed


def _referrers(fetch: Fetch, digest: Digest, deadline: _Deadline) -> bool | int:
    """Whether the referrers API lists a cosign signature of `digest`, or the status it
    answered instead."""
    path = f"referrers/{digest.value}?artifactType={quote(COSIGN_SIGNATURE, safe='')}"
    answer = fetch(path, OCI_INDEX, MAX_DOCUMENT_BYTES, _timeout(deadline))
    if answer.status != 200:
        return answer.status
    document = _json_object(answer.body) or {}
    # A registry that did not apply the filter lists every referrer; the type says which.
    return any(
        entry.get("artifactType") == COSIGN_SIGNATURE for entry in _list(document.get("manifests"))
    )


def _has_signature_tag(fetch: Fetch, digest: Digest, deadline: _Deadline) -> bool | int:
    path = f"manifests/{signature_tag(digest)}"
    answer = fetch(path, MANIFEST_ACCEPT, MAX_DOCUMENT_BYTES, _timeout(deadline))
    return answer.status == 200 if answer.status in (200, 404) else answer.status


def _timeout(deadline: _Deadline) -> float:
    remaining = deadline.remaining()
    if remaining <= 0:
        raise UpstreamTimeoutError(NOT_IN_TIME)
    return remaining


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _list(value: object) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _platform(value: object) -> str | None:
    if not isinstance(value, dict):
        return None
    os, architecture = value.get("os"), value.get("architecture")
    if not isinstance(os, str) or not isinstance(architecture, str) or not os or not architecture:
        return None
    variant = value.get("variant")
    return (
        f"{os}/{architecture}/{variant}"
        if isinstance(variant, str) and variant
        else f"{os}/{architecture}"
    )


def _date(value: object) -> datetime | None:
    """A config's `created` (RFC 3339); the zero time some builders write for a reproducible
    image says nothing."""
    if not isinstance(value, str):
        return None
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return None if created.year <= 1970 else created
