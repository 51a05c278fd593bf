"""What the comparison runs against: the test registry with the bench's images, `python -m crev`
in front of it, and the two ways a request can go (straight to the upstream, or through crev).

The upstream is the registry itself over plain HTTP, or the same registry behind nginx
terminating TLS (`rig/nginx_front.py`), as every real registry speaks TLS: then "direct" asks
the front and crev is a second `python -m crev` whose upstream is the front."""

from __future__ import annotations

import contextlib
import os
import random
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from unittest import mock

import httpx

from rig import TestRegistry, push_large_image, push_small_image
from rig.crev_process import CrevProcess, run_crev, serving_acme
from rig.images import (
    MANIFEST_ACCEPT,
    layout_dir,
    make_image_config,
    make_layer,
    make_manifest,
    skopeo_push,
    write_oci_layout,
)
from rig.nginx_front import NginxFront, find_nginx, nginx_front

from .probes import MiB

PREFIX = "acme"
CONCURRENCY = 16
# `random.randbytes(n)` overflows at n = 256 MiB exactly (n * 8 bits > INT_MAX), so the layer's
# data is one byte short; tar headers and gzip framing still make the blob itself over 256 MiB.
BLOB_DATA_SIZE = 256 * MiB - 1
# The single-layer image `skopeo copy` pulls beside the multi-layer one (one byte short of
# 64 MiB of data, as above).
SINGLE_LAYER_DATA_SIZE = 64 * MiB - 1
# Layer data sizes of the multi-layer image `skopeo copy` pulls: layers of many sizes, as real
# images have, each small enough for a caching edge to keep.
COPY_LAYER_SIZES = (8 * MiB, 4 * MiB, 2 * MiB, 1 * MiB, 256 * 1024, 16 * 1024)
# The typical pull of issue 31: several mid-sized layers, where crev's cost per request shows.
EIGHT_LAYER_SIZES = (2 * MiB,) * 8

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
    tls: ssl.SSLContext | None = None  # what an https client of this side trusts

    @classmethod
    def direct(cls, registry: TestRegistry) -> Target:
        return cls("direct", registry.host, f"{PREFIX}/")

    @classmethod
    def front(cls, front: NginxFront) -> Target:
        trust = ssl.create_default_context(cafile=front.ca_file)
        return cls("direct", front.host, f"{PREFIX}/", trust)

    @classmethod
    def through(cls, crev: CrevProcess) -> Target:
        return cls("crev", crev.host, "")

    def url(self, path: str) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}{path}"

    def client(self) -> httpx.Client:
        """A keep-alive client for this side."""
        return httpx.Client(timeout=30, verify=self.tls or True)

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
    single_image: str  # the single-layer image, by its name through crev
    eight_layer_image: str  # 8 layers of 2 MiB, by its name through crev


def push_copy_image(
    registry: TestRegistry,
    name: str = "acme/layers",
    tag: str = "1",
    sizes: tuple[int, ...] = COPY_LAYER_SIZES,
    seed: int = 7,
) -> str:
    """A multi-layer image of incompressible data (gzip level 0, so it builds fast), one layer
    of each of `sizes`; its name through crev."""
    rng = random.Random(seed)
    built = [
        make_layer({f"data/layer-{i}.bin": rng.randbytes(size)}, compresslevel=0)
        for i, size in enumerate(sizes)
    ]
    layers = [blob for blob, _ in built]
    config = make_image_config([diff for _, diff in built], label=f"{name}:{tag}")
    manifest = make_manifest(config, layers)
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, manifest, [config, *layers])
    skopeo_push(registry, layout, tag, name, tag)
    return name.removeprefix(f"{PREFIX}/")


def push_bench_images(registry: TestRegistry) -> BenchImages:
    """`acme/tool:1` (a small image), the multi-layer images, one with a large layer and one
    with a single 64 MiB layer."""
    push_small_image(registry, f"{PREFIX}/tool", "1")
    copy_image = push_copy_image(registry)
    eight_layers = push_copy_image(registry, f"{PREFIX}/eight", "1", EIGHT_LAYER_SIZES, seed=8)
    big = push_large_image(registry, f"{PREFIX}/big", "1", BLOB_DATA_SIZE)
    push_large_image(registry, f"{PREFIX}/single", "1", SINGLE_LAYER_DATA_SIZE, seed=2)
    digest = big.blobs[-1]
    registry.clear_logs()
    return BenchImages(copy_image, Blob(digest, big.blob_sizes[digest]), "single", eight_layers)


@dataclass(frozen=True)
class Testbed:
    """The registry and a running crev in front of it, with the bench's images pushed."""

    registry: TestRegistry
    crev: CrevProcess
    images: BenchImages
    workdir: Path
    front: NginxFront | None = None  # the TLS front crev's upstream is, if any

    @property
    def upstream(self) -> str:
        return "tls" if self.front is not None else "plain"

    @property
    def targets(self) -> dict[Side, Target]:
        direct = Target.front(self.front) if self.front else Target.direct(self.registry)
        return {"direct": direct, "crev": Target.through(self.crev)}

    @property
    def crev_pid(self) -> int:
        return self.crev.process.pid

    @property
    def upstream_port(self) -> int:
        """The port crev's upstream connections go to."""
        host = self.front.host if self.front is not None else self.registry.host
        return int(host.rsplit(":", 1)[1])

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


@contextlib.contextmanager
def tls_upstream(registry: TestRegistry, workdir: Path) -> Iterator[tuple[NginxFront, CrevProcess]]:
    """The registry behind nginx terminating TLS, and a crev whose upstream is the front,
    trusting the front's CA as a deployment trusts a private CA (`SSL_CERT_FILE`)."""
    with contextlib.ExitStack() as stack:
        front = stack.enter_context(nginx_front(registry.host, workdir / "front"))
        with mock.patch.dict(os.environ, {"SSL_CERT_FILE": str(front.ca_file)}):
            # Read once, as crev starts; the bench's own clients keep their trust.
            crev = stack.enter_context(
                run_crev(workdir / "crev-tls", **serving_acme(front.host, "https"))
            )
        yield front, crev


def missing_tls_front() -> str | None:
    """What to install for the TLS rows, if anything."""
    return None if find_nginx() else "nginx (apt-get install nginx)"


@contextlib.contextmanager
def tls_testbed(bed: Testbed) -> Iterator[Testbed]:
    """`bed` with its registry behind a TLS front, and a crev of its own in front of that."""
    with tls_upstream(bed.registry, bed.workdir) as (front, crev):
        yield Testbed(bed.registry, crev, bed.images, bed.workdir, front)
