"""Images pulled to disk with `skopeo copy` (a `dir:` or an OCI layout), and checks of what a
copy holds, for the tests that pull through crev with skopeo."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from rig.images import PushedImage, sha256_digest
from rig.registry import TestRegistry
from rig.tools import SKOPEO_TIMEOUT_S, ToolError, skopeo

# Every registry and crev here serve plain HTTP or a certificate skopeo has no CA for.
INSECURE_SOURCE = "--src-tls-verify=false"


def copy_to_dir(source: str, destination: Path) -> Path:
    """`skopeo copy` of `source` (`host/name:tag`) into a `dir:`, which keeps the manifest
    bytes as they came and names each blob by its digest."""
    skopeo("copy", INSECURE_SOURCE, f"docker://{source}", f"dir:{destination}")
    return destination


def check_dir_copy(destination: Path, image: PushedImage) -> None:
    """The `dir:` holds the image's manifest byte for byte and every blob whole."""
    manifest = (destination / "manifest.json").read_bytes()
    assert manifest == image.manifest
    assert sha256_digest(manifest) == image.digest
    for digest in image.blobs:
        data = (destination / digest.removeprefix("sha256:")).read_bytes()
        assert sha256_digest(data) == digest
        assert len(data) == image.blob_sizes[digest]


def copy_to_oci(
    source: str, layout: Path, *options: str, timeout: float = SKOPEO_TIMEOUT_S
) -> dict[str, Any]:
    """`skopeo copy` of `source` (`docker://...`) into an OCI layout; the layout's index."""
    skopeo("copy", INSECURE_SOURCE, *options, source, f"oci:{layout}:pulled", timeout=timeout)
    return json.loads((layout / "index.json").read_text())


def missing_blobs(layout: Path, digests: Iterable[str]) -> list[str]:
    """Those of `digests` the OCI layout holds no blob for."""
    return [
        digest
        for digest in digests
        if not (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).is_file()
    ]


def check_copy_of_every_platform(source: str, index: PushedImage, layout: Path) -> None:
    """`skopeo copy --all` of a multi-platform `index` from `source` keeps the index's digest
    and brings every platform's manifest."""
    copied = copy_to_oci(source, layout, "--all", "--preserve-digests")
    assert copied["manifests"][0]["digest"] == index.digest
    assert not missing_blobs(layout, index.children)


def check_private_copy_needs_credentials(
    source: str, image: PushedImage, registry: TestRegistry, workdir: Path
) -> None:
    """Copying the private `image` from `source` is refused as unauthorized without credentials,
    and gives the pushed digest with the registry's."""
    with pytest.raises(ToolError) as refused:
        copy_to_oci(source, workdir / "anonymous")
    assert "unauthorized" in refused.value.stderr.lower() or "401" in refused.value.stderr
    credentials = f"{registry.username}:{registry.password}"
    copied = copy_to_oci(source, workdir / "alice", "--src-creds", credentials)
    assert copied["manifests"][0]["digest"] == image.digest
