"""docker, the client most users have, through `python -m crev` from the real registry with token
auth: pulls by tag, digest and platform, Docker schema2, a large layer, login and logout, a run of
the pulled image, pushes with a new layer and with mounted ones, an HTTPS upstream, Vercel's
runtime, and the same upstream requests as a direct pull. Every test uses a private dockerd.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from rig import (
    PushedImage,
    TestRegistry,
    ToolError,
    config_digest,
    fetch_manifest,
    require_binaries,
)
from rig.crev_process import CrevProcess, crev_for, serving_acme
from rig.images import RUNNABLE_GREETING, push_runnable_image, push_small_image
from rig.vercel_runtime import run_vercel_app
from tests.support.docker import Docker, run_dockerd
from tests.support.registry_fixtures import run_test_registry
from tests.support.upstream_requests import Answered, assert_asks_upstream_as_a_direct_pull


@pytest.fixture(scope="module")
def runnable(registry: TestRegistry, images: dict[str, PushedImage]) -> PushedImage:
    require_binaries("busybox")
    busybox = Path(shutil.which("busybox") or "").read_bytes()
    return push_runnable_image(registry, busybox)


def check_pulled(docker: Docker, reference: str, repository: str, image: PushedImage) -> None:
    """The image ID is the config digest, and the repo digest the manifest digest pulled."""
    inspected = docker.inspect(reference)
    assert inspected["Id"] == image.blobs[0]
    assert f"{repository}@{image.digest}" in inspected["RepoDigests"]


def test_pull_by_tag_and_by_digest(
    docker: Docker, crev_process: CrevProcess, images: dict[str, PushedImage]
) -> None:
    tool = images["tool"]
    docker.pull(f"{crev_process.host}/tool:1")
    check_pulled(docker, f"{crev_process.host}/tool:1", f"{crev_process.host}/tool", tool)
    docker.remove_images()
    docker.pull(f"{crev_process.host}/tool@{tool.digest}")
    check_pulled(
        docker, f"{crev_process.host}/tool@{tool.digest}", f"{crev_process.host}/tool", tool
    )


def test_platform_selection_from_an_index(
    docker: Docker,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    multi = images["multi"]
    _, arm64_child = multi.children
    reference = f"{crev_process.host}/multi:1"
    docker.pull(reference, "--platform", "linux/arm64/v8")
    inspected = docker.inspect(reference)
    assert inspected["Architecture"] == "arm64"
    assert inspected["Id"] == config_digest(registry, "acme/multi", arm64_child)
    assert f"{crev_process.host}/multi@{multi.digest}" in inspected["RepoDigests"]


def test_a_docker_schema2_image_and_a_large_layer(
    docker: Docker, crev_process: CrevProcess, images: dict[str, PushedImage]
) -> None:
    for name in ("docker", "big"):
        image = images[name]
        docker.pull(f"{crev_process.host}/{name}:1")
        check_pulled(docker, f"{crev_process.host}/{name}:1", f"{crev_process.host}/{name}", image)
    assert images["big"].total_size > 32 * 1024 * 1024


def test_run_the_pulled_image(
    docker: Docker, crev_process: CrevProcess, runnable: PushedImage
) -> None:
    reference = f"{crev_process.host}/runnable:1"
    docker.pull(reference)
    check_pulled(docker, reference, f"{crev_process.host}/runnable", runnable)
    ran = docker.run(
        "run", "--rm", "--network", "none", reference, "/bin/busybox", "cat", "/greeting.txt"
    )
    assert ran.stdout.encode() == RUNNABLE_GREETING


def test_login_private_pull_logout_and_the_denial_without_login(
    docker: Docker,
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    reference = f"{crev_process.host}/private/secret:1"
    with pytest.raises(ToolError) as denied:
        docker.pull(reference)
    assert "denied" in denied.value.stderr or "unauthorized" in denied.value.stderr
    assert (
        "Login Succeeded"
        in docker.login(crev_process.host, registry.username, registry.password).stdout
    )
    docker.pull(reference)
    check_pulled(docker, reference, f"{crev_process.host}/private/secret", images["private"])
    docker.run("logout", crev_process.host)
    docker.remove_images()
    with pytest.raises(ToolError):
        docker.pull(reference)


def test_the_same_upstream_requests_as_a_direct_pull(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    require_binaries("dockerd", "docker")

    # A daemon of its own for each pull: docker keeps the manifests it pulled in its content
    # store after `image rm`, until a garbage collection that comes when it comes, and a pull
    # that finds them there asks the registry for fewer.
    def pull(label: str, reference: str) -> None:
        with run_dockerd(tmp_path / label) as docker:
            docker.pull(reference)

    # docker pings once and asks for an anonymous token once, and a warm crev answers both: two
    # upstream round trips fewer than direct.
    assert assert_asks_upstream_as_a_direct_pull(registry, crev_process, pull) == Answered(
        pings=1, tokens=1
    )


def layer_tarball(path: Path, content: bytes) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("built-by-the-test.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path


def pushed_digest(output: str) -> str:
    return next(word for word in output.split() if word.startswith("sha256:"))


def test_push_a_new_layer_and_mounted_ones_then_pull_back(
    docker: Docker, push_crev: CrevProcess, registry: TestRegistry, tmp_path: Path
) -> None:
    new = f"{push_crev.host}/pushed/new:1"
    other = f"{push_crev.host}/pushed/other:1"
    docker.run("import", str(layer_tarball(tmp_path / "layer.tar", tmp_path.name.encode())), new)
    docker.login(push_crev.host, registry.username, registry.password)
    registry.clear_logs()
    new_digest = pushed_digest(docker.run("push", new).stdout)
    docker.run("tag", new, other)
    other_digest = pushed_digest(docker.run("push", other).stdout)
    log = registry.access_log()
    # docker mounted the layer from the first repository instead of uploading it again: the
    # registry answered the mount with 201 Created, and no layer went up a second time.
    mounts = [
        record
        for record in registry.access_log_records()
        if record.method == "POST" and "mount=" in record.path and "pushed/other" in record.path
    ]
    assert mounts and all(record.status == 201 for record in mounts), mounts
    assert all(
        "from=acme%2Fpushed%2Fnew" in r.path or "from=acme/pushed/new" in r.path for r in mounts
    )
    assert {
        entry.path for entry in log if entry.method == "PUT" and "/manifests/" in entry.path
    } == {
        "/v2/acme/pushed/new/manifests/1",
        "/v2/acme/pushed/other/manifests/1",
    }
    for name, digest in (("acme/pushed/new", new_digest), ("acme/pushed/other", other_digest)):
        manifest, _ = fetch_manifest(registry, name, "1")
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    image_id = docker.inspect(new)["Id"]
    docker.remove_images()
    for reference, digest in ((new, new_digest), (other, other_digest)):
        docker.pull(reference)
        inspected = docker.inspect(reference)
        assert inspected["Id"] == image_id
        assert f"{reference.rsplit(':', 1)[0]}@{digest}" in inspected["RepoDigests"]


def test_pull_from_an_https_upstream(
    docker: Docker, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_test_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as tls_registry:
        assert tls_registry.url.startswith("https://") and tls_registry.ca_file is not None
        image = push_small_image(tls_registry, "acme/tool", "1")
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_file))
        with crev_for(tls_registry, tmp_path_factory.mktemp("tls-crev")) as crev:
            docker.pull(f"{crev.host}/tool:1")
            check_pulled(docker, f"{crev.host}/tool:1", f"{crev.host}/tool", image)


def test_pull_through_vercels_runtime(
    docker: Docker, registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    with run_vercel_app(tmp_path / "app", **serving_acme(registry.host)) as app:
        for name in ("tool", "big"):
            docker.pull(f"{app.host}/{name}:1")
            check_pulled(docker, f"{app.host}/{name}:1", f"{app.host}/{name}", images[name])
