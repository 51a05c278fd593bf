"""Routes, Docker Hub-style official images and server-side credentials, end to end against the
real registry (it plays Docker Hub too: official images live under `library/`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig import PushedImage, TestRegistry, push_small_image, repository_names, skopeo
from rig.crev_process import CrevProcess, run_crev


@pytest.fixture(scope="module")
def official(registry: TestRegistry, images: dict[str, PushedImage]) -> PushedImage:
    return push_small_image(registry, "library/busybox", "1", label="busybox")


@pytest.fixture(scope="module")
def routed_crev(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    official: PushedImage,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CrevProcess]:
    upstream = f"{registry.scheme}://{registry.host}"
    routes = ", ".join(
        [
            f"hub/={upstream};official-images",
            f"secret/={upstream}/acme/private;credentials=ROBOT",
            f"={upstream}/acme",
        ]
    )
    with run_crev(
        tmp_path_factory.mktemp("routed"),
        routes=routes,
        robot_username=registry.username,
        robot_password=registry.password,
    ) as crev:
        yield crev


def pulled_digest(source: str, destination: Path) -> str:
    skopeo("copy", "--src-tls-verify=false", source, f"oci:{destination}:x")
    return json.loads((destination / "index.json").read_text())["manifests"][0]["digest"]


def test_each_route_serves_its_namespace(
    routed_crev: CrevProcess, images: dict[str, PushedImage], official: PushedImage, tmp_path: Path
) -> None:
    host = routed_crev.host
    assert pulled_digest(f"docker://{host}/tool:1", tmp_path / "a") == images["tool"].digest
    assert pulled_digest(f"docker://{host}/hub/busybox:1", tmp_path / "b") == official.digest


def test_private_upstream_served_to_anonymous_clients(
    routed_crev: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    registry.clear_logs()
    digest = pulled_digest(f"docker://{routed_crev.host}/secret/secret:1", tmp_path / "s")
    assert digest == images["private"].digest
    requests = registry.issuer.requests()
    assert requests and all(request.has_authorization for request in requests)
    assert {scope for request in requests for scope in request.scopes} <= {
        "repository:acme/private/secret:pull"
    }
    assert repository_names(registry.access_log()) == {"acme/private/secret"}
    assert registry.password not in routed_crev.log()


def test_the_same_private_image_needs_credentials_on_a_public_route(
    routed_crev: CrevProcess, tmp_path: Path
) -> None:
    # Reached through the catch-all route, `private/secret` needs the client's own credentials.
    with pytest.raises(Exception, match=r"(?i)unauthorized|401|denied"):
        pulled_digest(f"docker://{routed_crev.host}/private/secret:1", tmp_path / "p")
