"""Every client pulls through crev from a registry that redirects blob reads to signed storage, as
ghcr.io, Docker Hub and the other big registries do: Debian's `docker-registry` on its `s3` driver,
with `moto_server` over TLS as the storage, answers each blob GET with a 307 to a presigned URL.

Each client pulls through crev in front of a plain registry, of one behind TLS, and under Vercel's
runtime; every blob it asked crev for was answered with the registry's redirect (crev's log shows
the 307s), and the storage served each blob to the client by its signed URL: crev relayed no blob
byte. On a public route crev answers the redirect as a 308 an edge may keep, and each client
follows that too; on a route that follows redirects crev reads each blob from the storage and
streams it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import oras.client
import pytest
from dxf import DXF, DXFBase
from requests import Response

from rig import require_binaries
from rig.crev_process import run_crev, serving_acme
from rig.images import push_small_image
from rig.nginx_front import find_nginx, nginx_front
from rig.tls_front import tls_front
from rig.tools import skip_or_fail_under_ci
from rig.vercel_runtime import run_vercel_app
from tests.support.containerd import Containerd
from tests.support.devcontainer import (
    apply_template,
    push_devcontainer_template,
    require_devcontainer_cli,
)
from tests.support.docker import run_dockerd
from tests.support.layouts import check_dir_copy, copy_to_dir
from tests.support.podman import Podman
from tests.support.redirects import (
    FOLLOWED,
    HANDED_ON,
    KEPT_AT_EDGE,
    Redirected,
    assert_fetched_from_storage,
    trust_bundle,
)
from tests.support.registry_fixtures import run_test_registry

# crev in front of the registry serving plain HTTP, in front of the registry behind TLS, under
# Vercel's runtime (behind its edge) in front of the plain registry, and on a public route and
# on one that follows redirects in front of the plain registry.
SETUPS = {
    "plain": HANDED_ON,
    "tls": HANDED_ON,
    "vercel": HANDED_ON,
    "public": KEPT_AT_EDGE,
    "follow": FOLLOWED,
}
SETTINGS = {"public": {"public": "1"}, "follow": {"follow_redirects": "1"}}


@pytest.fixture(scope="module", params=list(SETUPS))
def redirected(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redirected]:
    with serving_redirecting(request.param, tmp_path_factory) as served:
        yield served


# Vercel's edge is the TLS terminator and tells the function so, while the runtime's edge here
# serves plain HTTP and says `X-Forwarded-Proto: http` whatever stands before it: crev under it
# cannot be put behind a TLS front of the tests' own.
@pytest.fixture(scope="module", params=[setup for setup in SETUPS if setup != "vercel"])
def redirected_to_front(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redirected]:
    with serving_redirecting(request.param, tmp_path_factory) as served:
        yield served


@contextlib.contextmanager
def serving_redirecting(
    setup: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redirected]:
    workdir = tmp_path_factory.mktemp(f"redirecting-{setup}")
    with contextlib.ExitStack() as stack:
        registry = stack.enter_context(
            run_test_registry(workdir / "registry", tls=setup == "tls", redirecting=True)
        )
        assert registry.storage is not None
        image = push_small_image(registry, "acme/tool", "1")
        # Go's TLS reads its roots from SSL_CERT_FILE, and so does crev: every Go client here
        # (skopeo, podman, ctr, dockerd) and crev trust the storage and the registry behind TLS
        # (the same CA).
        environment = stack.enter_context(pytest.MonkeyPatch.context())
        environment.setenv("SSL_CERT_FILE", str(registry.storage.ca_file))
        settings = {**serving_acme(registry.host, registry.scheme), **SETTINGS.get(setup, {})}
        answers = SETUPS[setup]
        if setup == "vercel":
            app = stack.enter_context(run_vercel_app(workdir / "app", **settings))
            yield Redirected(registry, image, app.host, app.functions["v2"].log_text, answers)
        else:
            crev = stack.enter_context(run_crev(workdir / "crev", **settings))
            yield Redirected(registry, image, crev.host, crev.log, answers)


def test_skopeo(redirected: Redirected, tmp_path: Path) -> None:
    redirected.clear_logs()
    check_dir_copy(copy_to_dir(f"{redirected.host}/tool:1", tmp_path / "tool"), redirected.image)
    assert_fetched_from_storage(redirected, redirected.image.blobs)


def test_podman(redirected: Redirected, podman: Podman) -> None:
    image, reference = redirected.image, f"{redirected.host}/tool:1"
    redirected.clear_logs()
    podman.pull(reference)
    inspected = podman.inspect(reference)
    assert inspected["Digest"] == image.digest
    # podman checks the config and every layer against its digest as it reads them.
    assert "sha256:" + inspected["Id"] == image.blobs[0]
    assert_fetched_from_storage(redirected, image.blobs)


def test_ctr(redirected: Redirected, containerd: Containerd) -> None:
    image, reference = redirected.image, f"{redirected.host}/tool:1"
    redirected.clear_logs()
    containerd.pull(reference)
    assert containerd.images() == {reference: image.digest}
    assert containerd.content() == {image.digest, *image.blobs}
    assert_fetched_from_storage(redirected, image.blobs)


def test_docker(redirected: Redirected, tmp_path: Path) -> None:
    require_binaries("dockerd", "docker")
    image, reference = redirected.image, f"{redirected.host}/tool:1"
    # A daemon of its own, started with the storage's CA in SSL_CERT_FILE.
    with run_dockerd(tmp_path / "dockerd") as docker:
        redirected.clear_logs()
        docker.pull(reference)
        inspected = docker.inspect(reference)
    assert inspected["Id"] == image.blobs[0]
    assert f"{redirected.host}/tool@{image.digest}" in inspected["RepoDigests"]
    assert_fetched_from_storage(redirected, image.blobs)


def test_oras(redirected: Redirected) -> None:
    image = redirected.image
    client = oras.client.OrasClient(
        hostname=redirected.host, insecure=True, tls_verify=str(redirected.storage.ca_file)
    )
    redirected.clear_logs()
    manifest = client.get_manifest(f"{redirected.host}/tool:1")
    assert [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])] == (
        list(image.blobs)
    )
    for digest in image.blobs:
        blob = client.get_blob(f"{redirected.host}/tool", digest)
        assert blob.status_code == 200
        assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == digest
    assert_fetched_from_storage(redirected, image.blobs)


def test_dxf(redirected: Redirected, tmp_path: Path) -> None:
    # python-dxf speaks token auth over https only: crev behind a TLS terminator, and one CA
    # bundle for the terminator and the storage.
    image = redirected.image

    def anonymous(dxf: DXFBase, response: Response) -> None:
        dxf.authenticate(response=response)

    with tls_front(redirected.host, tmp_path / "front") as front:
        trusted = trust_bundle(tmp_path / "trusted.pem", front.ca_file, redirected.storage.ca_file)
        dxf = DXF(front.host, "tool", auth=anonymous, tlsverify=str(trusted))
        redirected.clear_logs()
        assert dxf.get_digest("1") == image.blobs[0]
        for digest in image.blobs:
            # pull_blob checks the bytes against the digest as they arrive.
            data = b"".join(dxf.pull_blob(digest))
            assert len(data) == image.blob_sizes[digest]
    assert_fetched_from_storage(redirected, image.blobs)


def test_devcontainer_cli_over_http(redirected: Redirected, tmp_path: Path) -> None:
    check_devcontainer_cli(redirected, "http", tmp_path)


def test_devcontainer_cli_over_https(redirected_to_front: Redirected, tmp_path: Path) -> None:
    check_devcontainer_cli(redirected_to_front, "https", tmp_path)


def check_devcontainer_cli(redirected: Redirected, scheme: str, tmp_path: Path) -> None:
    require_devcontainer_cli()
    template = push_devcontainer_template(redirected.registry)
    workspace = tmp_path / "workspace"
    with contextlib.ExitStack() as stack:
        if scheme == "http":
            # The CLI speaks plain HTTP only to a registry named localhost.
            host = redirected.host.replace("127.0.0.1:", "localhost:")
            trusted = redirected.storage.ca_file
        else:
            # Any other name it asks in https: crev behind nginx, which terminates TLS and
            # says so in `X-Forwarded-Proto`, as a deployment's front does; crev's token realm
            # is then https too.
            if find_nginx() is None:
                skip_or_fail_under_ci("nginx not installed: apt-get install nginx (CI installs it)")
            front = stack.enter_context(nginx_front(redirected.host, tmp_path / "front"))
            host = front.host
            trusted = trust_bundle(
                tmp_path / "trusted.pem", front.ca_file, redirected.storage.ca_file
            )
        redirected.clear_logs()
        written = apply_template(
            f"{host}/templates/crev:1", workspace, tmp_dir=tmp_path / "cli", ca_file=trusted
        )
    # The CLI checks the layer against its digest before it unpacks it.
    assert sorted(path.removeprefix("./") for path in written) == sorted(template.files)
    unpacked = {
        str(path.relative_to(workspace)): path.read_bytes()
        for path in workspace.rglob("*")
        if path.is_file()
    }
    assert unpacked == template.files
    assert_fetched_from_storage(redirected, [template.layer])
