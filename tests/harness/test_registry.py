"""The test harness on its own: real registry, token issuer and seeded images, no proxy."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jwt
import pytest

from rig import (
    PushedImage,
    TestRegistry,
    ToolError,
    push_small_image,
    repository_names,
    seed_images,
    skopeo,
)
from tests.support.layouts import missing_blobs
from tests.support.registry_fixtures import run_test_registry, running_registry

# The harness's own registry and images, which no test through crev has pulled from or pushed to.
registry = pytest.fixture(scope="module", name="registry")(running_registry)
images = pytest.fixture(scope="module", name="images")(seed_images)


@pytest.fixture
def clean_logs(registry: TestRegistry, images: dict[str, PushedImage]) -> TestRegistry:
    registry.clear_logs()
    return registry


def inspect(registry: TestRegistry, image: PushedImage, *creds: str) -> dict[str, object]:
    args = ["inspect", *(creds or ["--no-creds"]), *registry.tls_args()]
    result = skopeo(*args, image.docker_ref(registry.host))
    return json.loads(result.stdout)


def get_token(
    registry: TestRegistry, *scopes: str, auth: tuple[str, str] | None = None, **params: str
) -> httpx.Response:
    query = {"service": registry.service, **params}
    return httpx.get(
        registry.realm,
        params=[*query.items(), *(("scope", s) for s in scopes)],
        auth=auth,
        verify=registry.verify,
    )


def access_claim(token: str) -> list[dict[str, object]]:
    return jwt.decode(token, options={"verify_signature": False})["access"]


# ------------------------------------------------------------------- registry


def test_registry_challenges_with_bearer_realm(registry: TestRegistry) -> None:
    with registry.client() as client:
        response = client.get("/v2/")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge == f'Bearer realm="{registry.realm}",service="{registry.service}"'


@pytest.mark.parametrize("key", ["tool", "docker", "artifact", "other"])
def test_anonymous_inspect_of_public_image_matches_digest(
    registry: TestRegistry, images: dict[str, PushedImage], key: str
) -> None:
    image = images[key]
    if key == "artifact":
        # skopeo inspect wants an image config; the raw manifest is what an artifact has.
        raw = skopeo(
            "inspect", "--raw", "--no-creds", *registry.tls_args(), image.docker_ref(registry.host)
        )
        assert raw.stdout.encode() == image.manifest
        assert json.loads(raw.stdout)["artifactType"] == image.artifact_type
        return
    info = inspect(registry, image)
    assert info["Digest"] == image.digest
    assert info["Layers"] == list(image.blobs[1:])


def test_private_image_needs_credentials(
    registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    image = images["private"]
    with pytest.raises(ToolError):
        inspect(registry, image)
    info = inspect(registry, image, registry.creds_arg())
    assert info["Digest"] == image.digest


def test_copy_all_of_index_keeps_its_digest(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    image = images["multi"]
    layout = tmp_path / "multi"
    skopeo(
        "copy",
        "--all",
        "--src-no-creds",
        *registry.tls_args("src-"),
        image.docker_ref(registry.host),
        f"oci:{layout}:copied",
    )
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    assert not missing_blobs(layout, (*image.children, *image.blobs))


def test_seeded_repositories(registry: TestRegistry, images: dict[str, PushedImage]) -> None:
    token = registry.token("repository:acme/many:pull", "repository:acme/big:pull")
    auth = {"Authorization": f"Bearer {token}"}
    with registry.client(headers=auth) as client:
        tags = client.get("/v2/acme/many/tags/list").json()["tags"]
        big = images["big"]
        layer = client.head(f"/v2/acme/big/blobs/{big.blobs[-1]}")
    assert sorted(tags) == sorted(images["many"].tags) and len(tags) == 120
    assert int(layer.headers["Content-Length"]) == big.blob_sizes[big.blobs[-1]] > 32 * 1024 * 1024
    assert images["docker"].media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert images["multi"].media_type == "application/vnd.oci.image.index.v1+json"


def test_logs_record_an_anonymous_pull(
    clean_logs: TestRegistry, images: dict[str, PushedImage]
) -> None:
    registry = clean_logs
    inspect(registry, images["tool"])
    log = registry.access_log()
    assert ("GET", "/v2/") in log
    assert ("GET", f"/v2/acme/tool/manifests/{images['tool'].tag}") in log
    assert repository_names(log) == {"acme/tool"}
    token_requests = [r for r in registry.issuer.requests() if r.path == "/token"]
    assert token_requests and all(not r.has_authorization for r in token_requests)
    assert token_requests[0].scopes == ["repository:acme/tool:pull"]
    assert token_requests[0].granted == ("repository:acme/tool:pull",)


# --------------------------------------------------------------------- issuer


def test_issuer_grants_intersection_of_asked_and_allowed(registry: TestRegistry) -> None:
    anonymous = get_token(
        registry,
        "repository:acme/tool:pull,push repository:acme/private/x:pull",
        "repository:acme/tool:delete",
        "bogus:thing:pull",
    )
    assert anonymous.status_code == 200
    assert access_claim(anonymous.json()["token"]) == [
        {"type": "repository", "name": "acme/tool", "actions": ["pull"]}
    ]
    alice = get_token(registry, "repository:acme/private/x:pull,push", auth=("alice", "wonderland"))
    assert access_claim(alice.json()["access_token"]) == [
        {"type": "repository", "name": "acme/private/x", "actions": ["pull", "push"]}
    ]
    assert "refresh_token" not in alice.json()


def test_issuer_rejects_wrong_credentials(registry: TestRegistry) -> None:
    response = get_token(registry, "repository:acme/tool:pull", auth=("alice", "nope"))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    posted = httpx.post(
        registry.realm,
        verify=registry.verify,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "nope",
            "service": registry.service,
            "client_id": "crev-test",
        },
    )
    assert posted.status_code == 401


def test_issuer_refresh_tokens(clean_logs: TestRegistry) -> None:
    registry = clean_logs
    offline = get_token(registry, auth=("alice", "wonderland"), offline_token="true").json()
    assert offline["refresh_token"]
    form = {
        "grant_type": "password",
        "username": "alice",
        "password": "wonderland",
        "service": registry.service,
        "client_id": "crev-test",
        "access_type": "offline",
    }
    by_password = httpx.post(registry.realm, data=form, verify=registry.verify).json()
    refreshed = httpx.post(
        registry.realm,
        verify=registry.verify,
        data={
            "grant_type": "refresh_token",
            "refresh_token": by_password["refresh_token"],
            "service": registry.service,
            "client_id": "crev-test",
            "scope": "repository:acme/tool:push",
        },
    ).json()
    assert refreshed["refresh_token"] == by_password["refresh_token"]
    assert access_claim(refreshed["access_token"])[0]["actions"] == ["push"]
    logged = registry.issuer.requests()
    assert [r.method for r in logged] == ["GET", "POST", "POST"]
    assert logged[0].has_authorization and logged[0].query["offline_token"] == ["true"]
    assert logged[1].form["password"] == ["***"]


def test_tokens_from_issuer_open_the_registry(
    registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    token = get_token(
        registry, "repository:acme/private/secret:pull", auth=("alice", "wonderland")
    ).json()["token"]
    accept = {"Accept": images["private"].media_type}
    with registry.client() as client:
        denied = client.get("/v2/acme/private/secret/manifests/1", headers=accept)
        allowed = client.get(
            "/v2/acme/private/secret/manifests/1",
            headers={**accept, "Authorization": f"Bearer {token}"},
        )
    assert denied.status_code == 401
    assert allowed.status_code == 200 and allowed.content == images["private"].manifest


# ------------------------------------------------------------------------ TLS


def test_tls_registry_with_ca(tmp_path: Path) -> None:
    with run_test_registry(tmp_path / "tls", tls=True) as registry:
        assert registry.ca_file is not None and registry.url.startswith("https://")
        assert registry.realm.startswith("https://")
        image = push_small_image(registry, "acme/tool", "1")
        info = inspect(registry, image)
        assert info["Digest"] == image.digest
        with pytest.raises(ToolError, match="certificate"):
            skopeo("inspect", "--no-creds", "--tls-verify=true", image.docker_ref(registry.host))
