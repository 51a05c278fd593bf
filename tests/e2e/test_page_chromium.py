"""The page for people in a real browser (headless Chromium), served from the real registry,
with a cosign-signed image pushed in the setup; and what the page costs the registry.

Where a test fails, a screenshot of the page it was reading is kept in `test-artifacts/` (or
`$CREV_TEST_ARTIFACTS`), named after the test.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crev.rewrite.challenge import parse_challenges
from rig import PushedImage, SignedImage, TestRegistry, push_signed_image, require_binaries
from rig.cosign import COSIGN_SIGNATURE_ANNOTATION, COSIGN_SIGNATURE_ARTIFACT
from rig.crev_process import CrevProcess, crev_for, serving_acme
from rig.images import push_small_image
from rig.vercel_runtime import run_vercel_app
from tests.support.registry_fixtures import run_test_registry

ARTIFACTS = Path(
    os.environ.get("CREV_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts"
)
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or "chromium"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=True,
    )


@contextmanager
def screenshot_on_failure(
    request: pytest.FixtureRequest, tmp_path: Path, url: str
) -> Iterator[None]:
    """Keep a screenshot of `url` where the block fails, for a person to look at."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        kept = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', request.node.name)}.png"
        try:
            chromium(tmp_path, f"--screenshot={kept}", "--window-size=1000,1400", url)
            print(f"screenshot of {url} kept in {kept}")
        except (subprocess.SubprocessError, OSError) as error:
            print(f"no screenshot of {url}: {error}")
        raise


def test_repository_page_renders_tags_and_pull_line(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    require_binaries("chromium")
    url = f"{crev_process.url}/many"
    dom = chromium(tmp_path, "--dump-dom", url).stdout
    assert f"<h1>{crev_process.host}/many</h1>" in dom
    assert f"docker pull {crev_process.host}/many:tag-119" in dom
    assert "Tags (120)" in dom
    screenshot = tmp_path / "many.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1000,700", url)
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # A blank page compresses to a few KiB; a rendered table of tags is far larger.
    assert len(png) > 20_000


def test_home_page_renders_in_a_browser(crev_process: CrevProcess, tmp_path: Path) -> None:
    require_binaries("chromium")
    dom = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/").stdout
    assert f"docker pull {crev_process.host}/NAME:TAG" in dom
    assert "/acme/NAME</code>" in dom
    host = crev_process.host
    for line in (
        f"podman pull {host}/NAME:TAG",
        f"ctr image pull --plain-http {host}/NAME:TAG",
        f'server = "http://{host}"',
        f"helm install RELEASE oci://{host}/NAME --version VERSION",
        f"cosign verify --key cosign.pub {host}/NAME:TAG",
    ):
        assert line in dom
    # Each has its copy button, shown by the page's script.
    assert dom.count('<button type="button" class="copy">Copy</button>') == 7


def test_private_and_missing_repositories_say_so_in_a_browser(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    require_binaries("chromium")
    private = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/private/secret").stdout
    assert "This repository is private. Log in to pull it." in private
    assert f"docker pull {crev_process.host}/private/secret:TAG" in private
    missing = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/no/such/thing").stdout
    assert "There is no such repository." in missing
    assert "docker pull" not in missing
    screenshot = tmp_path / "private.png"
    chromium(
        tmp_path,
        f"--screenshot={screenshot}",
        "--window-size=1000,500",
        f"{crev_process.url}/private/secret",
    )
    assert len(screenshot.read_bytes()) > 10_000


@pytest.fixture(scope="module")
def signed(registry: TestRegistry, images: dict[str, PushedImage]) -> SignedImage:
    """`acme/signed:1`, signed as cosign signs with a key pair (cosign itself is in none of the
    package registries this project installs from): the payload, the signature annotation, the
    `.sig` tag and the referrer, pushed over the registry API."""
    return push_signed_image(registry, "acme/signed", "1")


def test_a_signed_image_shows_its_details_and_how_to_verify_it(
    crev_process: CrevProcess, signed: SignedImage, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require_binaries("chromium")
    url = f"{crev_process.url}/signed"
    with screenshot_on_failure(request, tmp_path, url):
        dom = chromium(tmp_path, "--dump-dom", url).stdout
        digest = signed.image.digest
        assert f'<code class="digest" title="{digest}">{digest[:19]}…</code>' in dom
        row = dom[dom.index("<h2>Latest tags</h2>") : dom.index("<h2>Tags (1)</h2>")]
        size = sum(signed.image.blob_sizes[blob] for blob in signed.image.blobs[1:])
        assert f"<td>linux/amd64</td><td>{size / 1000:.3g} kB</td>" in row
        assert '<time datetime="2024-01-01T00:00:00+00:00">2024-01-01</time>' in row
        assert '<span class="signed">signed</span>' in row
        assert f"<pre>cosign verify --key cosign.pub {crev_process.host}/signed:1</pre>" in dom
        # cosign's `.sig` tag is counted, not listed as an image to pull.
        assert "and 2 of cosign's signature, attestation and SBOM tags" in dom
        assert f":{signed.signature_tag}" not in dom
        # The copy buttons show: the page's script ran under its Content-Security-Policy.
        assert dom.count('<button type="button" class="copy">Copy</button>') >= 3
        assert "hidden" not in dom.split("<button", 1)[1].split(">", 1)[0]


def test_a_multi_platform_index_shows_its_platforms(
    crev_process: CrevProcess,
    images: dict[str, PushedImage],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    require_binaries("chromium")
    url = f"{crev_process.url}/multi"
    with screenshot_on_failure(request, tmp_path, url):
        dom = chromium(tmp_path, "--dump-dom", url).stdout
        multi = images["multi"]
        assert f'<code class="digest" title="{multi.digest}">' in dom
        assert "<td>linux/amd64, linux/arm64</td>" in dom
        assert '<span class="muted">(linux/amd64)</span>' in dom
        # Nothing signed it, and the registry has no referrers API to say otherwise.
        assert "<td>no</td>" in dom
        screenshot = tmp_path / "multi.png"
        chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1000,900", url)
        assert len(screenshot.read_bytes()) > 20_000


def test_an_unreachable_registry_keeps_its_page(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require_binaries("chromium")
    from rig.crev_process import run_crev

    with run_crev(
        tmp_path / "crev", registry_host="127.0.0.1:9", registry_scheme="http", upstream_timeout="2"
    ) as crev:
        url = f"{crev.url}/tool"
        with screenshot_on_failure(request, tmp_path, url):
            dom = chromium(tmp_path, "--dump-dom", url).stdout
            assert "the registry could not be asked" in dom
            assert f"docker pull {crev.host}/tool:TAG" in dom


def registry_requests(registry: TestRegistry, page: str, crev: CrevProcess) -> list[str]:
    """What loading `page` asked of the registry; the token it needed, asked once."""
    registry.clear_logs()
    response = httpx.get(f"{crev.url}/{page}", headers=HTML, timeout=30)
    assert response.status_code == 200
    scopes = [scope for asked in registry.issuer.requests() for scope in asked.scopes]
    assert scopes == [f"repository:acme/{page}:pull"]
    return [f"{entry.method} {entry.path}" for entry in registry.access_log()]


def test_a_page_costs_the_registry_a_bounded_number_of_requests(
    registry: TestRegistry, signed: SignedImage, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """docs/configuration.md's count: the tag list, a manifest per detailed tag (10 at most), a
    config per distinct image (and an index's one child manifest), and one referrers request,
    which a registry without the API answers 404, so no other digest asks; a `.sig` tag in the
    list says `signed` for free."""
    with crev_for(registry, tmp_path / "crev") as crev:
        first = registry_requests(registry, "signed", crev)
        name = "/v2/acme/signed"
        config = json.loads(signed.image.manifest)["config"]["digest"]
        assert first == [
            f"GET {name}/tags/list",
            f"GET {name}/manifests/1",
            f"GET {name}/blobs/{config}",
        ]
        many = registry_requests(registry, "many", crev)
        manifests = sorted(f"GET /v2/acme/many/manifests/tag-{n:03d}" for n in range(10))
        referrers = f"GET /v2/acme/many/referrers/{images['many'].digest}"
        assert many[0] == "GET /v2/acme/many/tags/list"
        assert sorted(many[1:11]) == manifests
        assert sorted(many[11:]) == sorted(
            [
                f"GET /v2/acme/many/blobs/{images['many'].blobs[0]}",
                referrers
                + "?artifactType="
                + "application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson",
            ]
        )
        multi = registry_requests(registry, "multi", crev)
        assert len(multi) == 5  # tag list, index, child manifest, its config, referrers


def test_cosign_s_signature_passes_through_untouched(
    crev_process: CrevProcess, signed: SignedImage
) -> None:
    """What `cosign verify` (and `verify-attestation`) read through crev: the `.sig` and `.att`
    tags' manifests and layers, byte for byte as pushed, with signatures the key verifies; the
    referrers API of a registry without one answers 404, so cosign falls back to the tags."""
    base = f"{crev_process.url}/v2/signed"
    token = anonymous_token(f"{base}/tags/list")
    accept = {
        "Accept": "application/vnd.oci.image.manifest.v1+json",
        "Authorization": f"Bearer {token}",
    }
    tagged = httpx.get(f"{base}/manifests/{signed.signature_tag}", headers=accept)
    assert tagged.status_code == 200
    assert tagged.content == signed.tagged_signature.data
    layer = tagged.json()["layers"][0]
    payload = httpx.get(
        f"{base}/blobs/{layer['digest']}", headers=accept, follow_redirects=True
    ).content
    assert payload == signed.payload
    key = serialization.load_pem_public_key(signed.public_key)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(layer["annotations"][COSIGN_SIGNATURE_ANNOTATION])
    key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == signed.image.digest
    attestation = httpx.get(f"{base}/manifests/{signed.attestation_tag}", headers=accept)
    assert attestation.content == signed.attestation.data
    (envelope_layer,) = attestation.json()["layers"]
    envelope = httpx.get(
        f"{base}/blobs/{envelope_layer['digest']}", headers=accept, follow_redirects=True
    ).json()
    statement = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    encoded = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(statement), statement)
    (dsse,) = envelope["signatures"]
    key.verify(base64.b64decode(dsse["sig"]), encoded, ec.ECDSA(hashes.SHA256()))
    subject = json.loads(statement)["subject"][0]["digest"]["sha256"]
    assert f"sha256:{subject}" == signed.image.digest
    by_digest = httpx.get(f"{base}/manifests/{signed.referrer.digest}", headers=accept)
    assert by_digest.content == signed.referrer.data
    assert by_digest.json()["artifactType"] == COSIGN_SIGNATURE_ARTIFACT
    referrers = httpx.get(
        f"{base}/referrers/{signed.image.digest}",
        params={"artifactType": COSIGN_SIGNATURE_ARTIFACT},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert referrers.status_code == 404


def anonymous_token(url: str) -> str:
    """A token as a client gets one: from the 401's challenge, at the realm it names."""
    challenged = httpx.get(url)
    assert challenged.status_code == 401
    (challenge,) = parse_challenges(challenged.headers["WWW-Authenticate"])
    realm = challenge.get("realm")
    assert realm is not None
    query = {"service": challenge.get("service") or "", "scope": challenge.get("scope") or ""}
    answer = httpx.get(realm, params=query)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    token = body.get("token") or body["access_token"]
    assert isinstance(token, str)
    return token


def test_a_registry_that_redirects_blobs_to_storage_shows_the_build_date(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on ghcr.io and Docker Hub, the config is answered with a 307 to signed storage (the
    registry on S3, served by moto over TLS): the page follows it, once, for the date."""
    require_binaries("chromium")
    with run_test_registry(tmp_path / "registry", redirecting=True) as registry:
        assert registry.storage is not None
        image = push_small_image(registry, "acme/tool", "1")
        # crev trusts the storage's CA, as the system's store would a real one's.
        monkeypatch.setenv("SSL_CERT_FILE", str(registry.storage.ca_file))
        with crev_for(registry, tmp_path / "crev") as crev:
            url = f"{crev.url}/tool"
            registry.storage.clear_log()
            with screenshot_on_failure(request, tmp_path, url):
                dom = chromium(tmp_path, "--dump-dom", url).stdout
                assert '<time datetime="2024-01-01T00:00:00+00:00">2024-01-01</time>' in dom
                config = image.blobs[0]
                reads = registry.storage.signed_reads()
                assert [r.status for r in reads.get(config, [])] == [200]
                # The config alone: no layer is read for a page.
                assert set(reads) == {config}


def test_the_page_s_details_under_vercel_s_runtime(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """`api/page.py` under vc_init, behind the edge stand-in: its requests run a few at a time
    in threads of the function's process, as they do in the local server."""
    require_binaries("chromium")
    with run_vercel_app(tmp_path / "vercel", **serving_acme(registry.host)) as app:
        url = f"{app.url}/multi"
        with screenshot_on_failure(request, tmp_path, url):
            dom = chromium(tmp_path, "--dump-dom", url).stdout
            assert f'<code class="digest" title="{images["multi"].digest}">' in dom
            assert "<td>linux/amd64, linux/arm64</td>" in dom
            assert '<time datetime="2024-01-01T00:00:00+00:00">2024-01-01</time>' in dom
