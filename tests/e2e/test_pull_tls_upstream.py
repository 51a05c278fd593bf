"""Pull through `python -m crev` from a registry and token realm that serve HTTPS, as every
public registry does: crev verifies them against the CA store `SSL_CERT_FILE` names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, skopeo
from rig.crev_process import CrevProcess, crev_for
from rig.images import push_small_image
from tests.support.registry_fixtures import run_test_registry
from tests.support.upstream_requests import assert_only_pulled


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRegistry]:
    with run_test_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as registry:
        yield registry


@pytest.fixture(scope="module")
def tls_image(tls_registry: TestRegistry) -> PushedImage:
    return push_small_image(tls_registry, "acme/tool", "1")


@pytest.fixture(scope="module")
def tls_crev(
    tls_registry: TestRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CrevProcess]:
    assert tls_registry.ca_file is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(tls_registry.ca_file))
        with crev_for(tls_registry, tmp_path_factory.mktemp("tls-crev")) as crev:
            yield crev


def test_skopeo_copies_from_an_https_registry_through_crev(
    tls_crev: CrevProcess, tls_registry: TestRegistry, tls_image: PushedImage, tmp_path: Path
) -> None:
    assert tls_registry.url.startswith("https://")
    tls_registry.clear_logs()
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        f"docker://{tls_crev.host}/tool:1",
        f"oci:{tmp_path}:pulled",
    )
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["manifests"][0]["digest"] == tls_image.digest
    for blob in tls_image.blobs:
        assert (tmp_path / "blobs" / "sha256" / blob.removeprefix("sha256:")).is_file()
    assert_only_pulled(tls_registry, "acme/tool", tls_crev)


def test_an_https_registry_crev_does_not_trust_is_a_502(
    tls_registry: TestRegistry,
    tls_image: PushedImage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with crev_for(tls_registry, tmp_path) as crev:
        response = httpx.get(f"{crev.url}/v2/tool/manifests/1", timeout=30)
    assert response.status_code == 502
    error = response.json()["errors"][0]
    assert error["code"] == "UNAVAILABLE"
    assert "CERTIFICATE_VERIFY_FAILED" in error["message"]
