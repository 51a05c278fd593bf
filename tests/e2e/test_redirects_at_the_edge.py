"""A public route in front of a registry that redirects blob reads to signed storage, behind the
stand-in for Vercel's edge cache (`CREV_PUBLIC=1`, `CREV_TAG_CACHE_SECONDS=300`; as
`python -m crev` and under Vercel's runtime): crev answers
each blob's redirect as a 308 the edge keeps while the signed URL lives, so a second pull by
another client reaches neither crev nor the upstream; and the same registry behind a route that
follows redirects, where crev streams each blob from storage itself with bounded memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry
from rig.caching_edge import CachingEdge, run_caching_edge
from rig.crev_process import CrevProcess, crev_for, run_crev, serving_acme
from rig.images import push_large_image, push_small_image
from rig.registry import client_verify
from rig.vercel_runtime import run_vercel_app
from tests.support.layouts import check_dir_copy, copy_to_dir
from tests.support.memory import peak_rss
from tests.support.podman import Podman
from tests.support.redirects import KEPT_AT_EDGE, Redirected, assert_fetched_from_storage
from tests.support.registry_fixtures import run_test_registry

LARGE_LAYER = 64 * 1024 * 1024


@dataclass
class Pulled:
    registry: TestRegistry
    images: dict[str, PushedImage]
    workdir: Path


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pulled]:
    """The redirecting registry with an image of one 64 MiB layer and one of 8 layers; its
    storage's CA trusted by crev and the clients."""
    workdir = tmp_path_factory.mktemp("redirects-at-the-edge")
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(run_test_registry(workdir / "registry", redirecting=True))
        assert registry.storage is not None
        images = {
            "big": push_large_image(registry, "acme/big", "1", LARGE_LAYER),
            "layered": push_small_image(registry, "acme/layered", "1", layers=8),
        }
        assert len(images["layered"].blobs) == 9
        environment = stack.enter_context(pytest.MonkeyPatch.context())
        environment.setenv("SSL_CERT_FILE", str(registry.storage.ca_file))
        yield Pulled(registry, images, workdir)


@dataclass
class PublicCrev:
    """crev on a public route keeping tags 300 s: `python -m crev`, or under Vercel's runtime."""

    url: str
    log: Callable[[], str]


@pytest.fixture(scope="module", params=["crev", "vercel"])
def public_crev(request: pytest.FixtureRequest, pulled: Pulled) -> Iterator[PublicCrev]:
    workdir = pulled.workdir / f"public-{request.param}"
    settings = {
        **serving_acme(pulled.registry.host, pulled.registry.scheme),
        "public": "1",
        "tag_cache_seconds": "300",
    }
    if request.param == "vercel":
        with run_vercel_app(workdir, **settings) as app:
            yield PublicCrev(app.url, app.functions["v2"].log_text)
    else:
        with run_crev(workdir, **settings) as crev:
            yield PublicCrev(crev.url, crev.log)


@pytest.fixture
def edge(public_crev: PublicCrev) -> Iterator[CachingEdge]:
    """A fresh (empty) edge cache in front of the module's public crev."""
    with run_caching_edge(public_crev.url) as running:
        yield running


@pytest.mark.parametrize("name", ["big", "layered"])
def test_a_second_pull_by_another_client_reaches_neither_crev_nor_the_upstream(
    pulled: Pulled,
    public_crev: PublicCrev,
    edge: CachingEdge,
    podman: Podman,
    tmp_path: Path,
    name: str,
) -> None:
    image, registry = pulled.images[name], pulled.registry
    redirected = Redirected(registry, image, edge.host, public_crev.log, KEPT_AT_EDGE)
    redirected.clear_logs()
    check_dir_copy(copy_to_dir(f"{edge.host}/{name}:1", tmp_path / "first"), image)
    # Each blob's redirect came back as a 308 the edge keeps, and went to storage.
    assert_fetched_from_storage(redirected, image.blobs)
    blob_targets = {f"/v2/{name}/blobs/{digest}" for digest in image.blobs}
    assert blob_targets <= edge.cached_targets()

    edge.clear_log()
    redirected.clear_logs()
    reference = f"{edge.host}/{name}:1"
    podman.pull(reference)
    assert podman.inspect(reference)["Digest"] == image.digest
    assert edge.requests, "podman asked the edge nothing"
    assert edge.misses() == []
    assert redirected.blob_answers(()) == []
    assert registry.access_log() == []
    assert registry.issuer.requests() == []
    # podman read every blob from the storage, by the URLs the edge kept.
    assert set(image.blobs) <= set(redirected.storage.signed_reads())


@pytest.fixture(scope="module")
def following_crev(pulled: Pulled) -> Iterator[CrevProcess]:
    workdir = pulled.workdir / "following-crev"
    with crev_for(pulled.registry, workdir, public="1", follow_redirects="1") as crev:
        yield crev


def test_a_followed_large_blob_streams_whole_with_bounded_memory(
    pulled: Pulled, following_crev: CrevProcess
) -> None:
    big = pulled.images["big"]
    layer = max(big.blobs, key=lambda digest: big.blob_sizes[digest])
    size = big.blob_sizes[layer]
    assert size >= LARGE_LAYER
    url = f"{following_crev.url}/v2/big/blobs/{layer}"
    with httpx.Client(timeout=120) as client:
        # Warm up, so that the peak before the read is a fair baseline.
        manifest = client.get(
            f"{following_crev.url}/v2/big/manifests/1", headers={"Accept": big.media_type}
        )
        assert manifest.status_code == 200
        before = peak_rss(following_crev.process.pid)
        digest = hashlib.sha256()
        received = 0
        with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            assert response.headers["docker-content-digest"] == layer
            for chunk in response.iter_raw():
                digest.update(chunk)
                received += len(chunk)
        after = peak_rss(following_crev.process.pid)
        ranged = client.get(url, headers={"Range": "bytes=1048576-2097151"})
    assert (received, f"sha256:{digest.hexdigest()}") == (size, layer)
    # Streamed, not buffered: crev never held the blob in memory.
    assert after - before < size // 2, (before, after)
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 1048576-2097151/{size}"
    assert len(ranged.content) == 1048576
    direct = httpx.get(
        pulled.registry.url + f"/v2/acme/big/blobs/{layer}",
        headers={"Authorization": f"Bearer {pulled.registry.token('repository:acme/big:pull')}"},
    )
    assert direct.status_code == 307
    assert pulled.registry.storage is not None
    storage = httpx.get(
        direct.headers["location"],
        headers={"Range": "bytes=1048576-2097151"},
        verify=client_verify(pulled.registry.storage.ca_file),
    )
    assert ranged.content == storage.content
    log = following_crev.log()
    assert re.search(rf"GET /v2/big/blobs/{layer} 200 upstream=307", log), log
    assert re.search(rf"GET /v2/big/blobs/{layer} 206 upstream=307", log), log
