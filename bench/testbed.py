"""What the comparison runs against: the test registry with the bench's images, `python -m crev`
in front of it, and the two ways a request can go (straight to the registry, or through crev)."""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rig import TestRegistry, push_large_image, push_small_image
from rig.crev_process import CrevProcess
from rig.images import (
    MANIFEST_ACCEPT,
    layout_dir,
    make_image_config,
    make_layer,
    make_manifest,
    skopeo_push,
    write_oci_layout,
)

from .probes import MiB

PREFIX = "acme"
CONCURRENCY = 16
# `random.randbytes(n)` overflows at n = 256 MiB exactly (n * 8 bits > INT_MAX), so the layer's
# data is one byte short; tar headers and gzip framing still make the blob itself over 256 MiB.
BLOB_DATA_SIZE = 256 * MiB - 1
# Layer data sizes of the multi-layer image `skopeo copy` pulls: layers of many sizes, as real
# images have, each small enough for a caching edge to keep.
COPY_LAYER_SIZES = (8 * MiB, 4 * MiB, 2 * MiB, 1 * MiB, 256 * 1024, 16 * 1024)

Side = Literal["direct", "crev"]


def side_order(round_index: int) -> tuple[Side, Side]:
    """Alternate which side goes first, so drift (caches, CPU clocks) hits both alike."""
    return ("direct", "crev") if round_index % 2 == 0 else ("crev", "direct")


@dataclass(frozen=True)
class Target:
    """One side of the comparison: where to send requests and how names look there."""

    side: Side
    host: str
    name_prefix: str  # "acme/" direct, "" through crev

    @classmethod
    def direct(cls, registry: TestRegistry) -> Target:
        return cls("direct", registry.host, f"{PREFIX}/")

    @classmethod
    def through(cls, crev: CrevProcess) -> Target:
        return cls("crev", crev.host, "")

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def name(self, vanity: str) -> str:
        return self.name_prefix + vanity

    def reference(self, vanity: str, tag: str = "1") -> str:
        """`HOST/NAME:TAG`, as a client names the image."""
        return f"{self.host}/{self.name(vanity)}:{tag}"

    def manifest_url(self) -> str:
        """The small image's manifest, the one every warm manifest scenario asks for."""
        return self.url(f"/v2/{self.name('tool')}/manifests/1")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class BenchImages:
    """What the bench pushes before it measures anything."""

    copy_image: str  # the multi-layer image, by its name through crev
    big_blob: Blob  # the large image's layer


def push_copy_image(registry: TestRegistry, name: str = "acme/layers", tag: str = "1") -> str:
    """A multi-layer image of incompressible data (gzip level 0, so it builds fast); its name
    through crev."""
    rng = random.Random(7)
    built = [
        make_layer({f"data/layer-{i}.bin": rng.randbytes(size)}, compresslevel=0)
        for i, size in enumerate(COPY_LAYER_SIZES)
    ]
    layers = [blob for blob, _ in built]
    config = make_image_config([diff for _, diff in built], label=f"{name}:{tag}")
    manifest = make_manifest(config, layers)
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, manifest, [config, *layers])
    skopeo_push(registry, layout, tag, name, tag)
    return name.removeprefix(f"{PREFIX}/")


def push_bench_images(registry: TestRegistry) -> BenchImages:
    """`acme/tool:1` (a small image), the multi-layer image and one with a large layer."""
    push_small_image(registry, f"{PREFIX}/tool", "1")
    copy_image = push_copy_image(registry)
    big = push_large_image(registry, f"{PREFIX}/big", "1", BLOB_DATA_SIZE)
    digest = big.blobs[-1]
    registry.clear_logs()
    return BenchImages(copy_image, Blob(digest, big.blob_sizes[digest]))


@dataclass(frozen=True)
class Testbed:
    """The registry and a running crev in front of it, with the bench's images pushed."""

    registry: TestRegistry
    crev: CrevProcess
    images: BenchImages
    workdir: Path

    @property
    def targets(self) -> dict[Side, Target]:
        return {"direct": Target.direct(self.registry), "crev": Target.through(self.crev)}

    @property
    def crev_pid(self) -> int:
        return self.crev.process.pid

    @property
    def registry_port(self) -> int:
        return int(self.registry.host.rsplit(":", 1)[1])

    def manifest_headers(self) -> dict[str, str]:
        token = self.registry.token(f"repository:{PREFIX}/tool:pull")
        return {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}

    def blob_headers(self) -> dict[str, str]:
        token = self.registry.token(f"repository:{PREFIX}/big:pull")
        return {"Authorization": f"Bearer {token}"}

    def blob_path(self, target: Target) -> str:
        return f"/v2/{target.name('big')}/blobs/{self.images.big_blob.digest}"

    def scratch(self, prefix: str) -> Path:
        """A fresh directory for one copy's files."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.workdir))
