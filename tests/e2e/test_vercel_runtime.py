"""Pull through crev's functions run by Vercel's own Python runtime (`vercel_runtime.vc_init`,
production IPC mode), behind a stand-in for Vercel's edge, from a real registry with token auth.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry, repository_names, skopeo
from rig.crev_process import serving_acme
from rig.images import build_small_image, write_oci_layout
from rig.vercel_runtime import VercelApp, run_vercel_app
from tests.support.layouts import (
    check_copy_of_every_platform,
    check_private_copy_needs_credentials,
    copy_to_oci,
    missing_blobs,
)
from tests.support.memory import peak_rss


@pytest.fixture(scope="module")
def vercel_app(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VercelApp]:
    with run_vercel_app(tmp_path_factory.mktemp("vercel"), **serving_acme(registry.host)) as app:
        yield app


def test_both_functions_run_under_vc_init(vercel_app: VercelApp) -> None:
    assert {"v2", "token"} <= set(vercel_app.functions)
    for function in vercel_app.functions.values():
        started = [m for m in function.messages() if m["type"] == "server-started"]
        assert started[0]["payload"]["httpPort"] == function.port
        assert function.process.poll() is None


def test_challenge_names_the_edge_token_endpoint(vercel_app: VercelApp) -> None:
    # The edge replaces forwarding headers a client sends with its own, as Vercel does.
    response = httpx.get(
        f"{vercel_app.url}/v2/",
        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
    )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert f'realm="http://{vercel_app.host}/api/token"' in challenge
    renamed = httpx.get(f"{vercel_app.url}/v2/", headers={"Host": "acme.test"})
    assert 'realm="http://acme.test/api/token"' in renamed.headers["www-authenticate"]
    # vc_init's cold-start timing header is the platform's; the edge keeps it from clients.
    assert not any(name.startswith("x-vercel-internal-") for name in response.headers)
    routed = [record for record in vercel_app.edge.records if record.path == "/v2/"]
    assert routed[-1].function == "/api/v2"
    assert routed[-1].status == 401


def test_copy_gives_the_pushed_digest(
    vercel_app: VercelApp, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    tool = images["tool"]
    index = copy_to_oci(
        f"docker://{vercel_app.host}/tool:1", tmp_path / "tool", "--preserve-digests"
    )
    assert index["manifests"][0]["digest"] == tool.digest
    assert not missing_blobs(tmp_path / "tool", tool.blobs)
    functions = {record.function for record in vercel_app.edge.records}
    assert {"/api/v2", "/api/token"} <= functions


def test_multi_platform_index_with_all(
    vercel_app: VercelApp, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    multi = images["multi"]
    check_copy_of_every_platform(f"docker://{vercel_app.host}/multi:1", multi, tmp_path / "all")


def test_private_image_needs_credentials_and_logs_never_show_them(
    vercel_app: VercelApp,
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    check_private_copy_needs_credentials(
        f"docker://{vercel_app.host}/private/secret:1", images["private"], registry, tmp_path
    )

    v2, token = vercel_app.functions["v2"], vercel_app.functions["token"]
    # crev's request lines reach the platform as IPC `log` messages, in the request's context.
    line = v2.wait_for_log(r"GET /v2/private/secret/manifests/1 .*\b200\b")
    assert line.level == "info"
    assert line.request_id > 0
    token.wait_for_log(r"GET /api/token\b")
    v2.wait_until_idle()
    token.wait_until_idle()
    logs = vercel_app.log_text()
    basic = f"{registry.username}:{registry.password}".encode()
    for secret in (registry.password, base64.b64encode(basic).decode()):
        assert secret not in logs
    assert "Traceback" not in logs


def test_large_blob_streams_through_with_the_right_digest(
    vercel_app: VercelApp, images: dict[str, PushedImage]
) -> None:
    big = images["big"]
    layer = max(big.blobs, key=lambda digest: big.blob_sizes[digest])
    size = big.blob_sizes[layer]
    assert size >= 32 * 1024 * 1024
    v2 = vercel_app.functions["v2"]
    with httpx.Client(base_url=vercel_app.url, timeout=60) as client:
        token = client.get("/api/token", params={"scope": "repository:big:pull"})
        assert token.status_code == 200
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        # Warm the function up so its peak memory before the pull is a fair baseline.
        manifest = client.get(
            f"/v2/big/manifests/{big.tag}", headers={**headers, "Accept": big.media_type}
        )
        assert manifest.status_code == 200
        before = peak_rss(v2.process.pid)
        digest = hashlib.sha256()
        received = 0
        with client.stream("GET", f"/v2/big/blobs/{layer}", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_raw():
                digest.update(chunk)
                received += len(chunk)
        after = peak_rss(v2.process.pid)
    assert received == size
    assert f"sha256:{digest.hexdigest()}" == layer
    # Streamed, not buffered: the function never held the blob in memory.
    assert after - before < size // 2, (before, after)
    v2.wait_for_log(rf"GET /v2/big/blobs/{re.escape(layer)} .*\b200\b")


def test_misconfiguration_answers_a_registry_error_naming_the_variable(tmp_path: Path) -> None:
    with run_vercel_app(tmp_path, **serving_acme("https://bad/x")) as app:
        for path in ("/v2/", "/v2/tool/manifests/1", "/api/token?scope=repository:tool:pull"):
            response = httpx.get(f"{app.url}{path}")
            assert response.status_code == 500, path
            assert response.headers["content-type"].startswith("application/json")
            error = response.json()["errors"][0]
            assert error["code"] == "UNKNOWN"
            assert "CREV_REGISTRY_HOST" in error["message"]
            assert "Traceback" not in response.text
        app.functions["v2"].wait_for_log(r"GET /v2/ .*\b500\b")
        # The function kept serving: a bad setting is an answer, not a crash.
        assert all(function.process.poll() is None for function in app.functions.values())


def test_push_request_bodies_reach_the_function_whole(
    registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """Uploads cross the edge and vc_init into crev: skopeo's (sized) and a chunked one."""
    with run_vercel_app(
        tmp_path / "app",
        **serving_acme(registry.host),
        allow_push="1",
    ) as app:
        built = build_small_image("pushed-under-vc-init")
        directory = write_oci_layout(tmp_path / "layout", "v", built.manifest, built.blobs)
        registry.clear_logs()
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            f"{registry.username}:{registry.password}",
            "--preserve-digests",
            f"oci:{directory}:v",
            f"docker://{app.host}/pushed/vercel:1",
        )
        assert repository_names(registry.access_log()) == {"acme/pushed/vercel"}
        pulled = skopeo(
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/acme/pushed/vercel:1",
        )
        assert "sha256:" + hashlib.sha256(pulled.stdout.encode()).hexdigest() == (
            built.manifest.digest
        )

        blob = b"chunked through the edge " * 8_000
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        token = httpx.get(
            f"{app.url}/api/token",
            params={"service": registry.service, "scope": "repository:streamed:pull,push"},
            auth=(registry.username, registry.password),
        ).json()["token"]
        with httpx.Client(
            base_url=app.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            location = client.post("/v2/streamed/blobs/uploads/").headers["location"]

            def pieces() -> Iterator[bytes]:
                for offset in range(0, len(blob), 7_000):
                    yield blob[offset : offset + 7_000]

            separator = "&" if "?" in location else "?"
            done = client.put(f"{location}{separator}digest={digest}", content=pieces())
            assert done.status_code == 201, done.text
            assert client.get(f"/v2/streamed/blobs/{digest}").content == blob
        assert any(record.method == "PUT" and record.status == 201 for record in app.edge.records)
        assert registry.password not in app.log_text()
