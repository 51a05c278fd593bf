"""The same sequence of registry API calls (the pull, push and content-management categories of
the OCI distribution spec's conformance tests) run directly against the registry and through
crev: every status, error code and protocol header must agree.

This is crev's own check, written from the spec; the spec's independent Go conformance suite is
not packaged for this machine (see README).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import httpx

from rig import PushedImage, TestRegistry
from rig.crev_process import CrevProcess

Outcome = tuple[str, int, str | None, tuple[str, ...]]
# Headers whose presence the spec requires on some answers; their values differ by name/host.
PROTOCOL_HEADERS = (
    "location",
    "docker-content-digest",
    "range",
    "docker-upload-uuid",
    "oci-subject",
)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def scenario(client: httpx.Client, name: str, source: str, existing_blob: str) -> list[Outcome]:
    """Run the calls against `client` (for repository `name`), recording what each answered."""
    outcomes: list[Outcome] = []

    def record(step: str, response: httpx.Response) -> httpx.Response:
        code = None
        if (
            response.headers.get("content-type", "").startswith("application/json")
            and response.content
        ):
            errors = response.json().get("errors") if isinstance(response.json(), dict) else None
            code = errors[0]["code"] if errors else None
        present = tuple(header for header in PROTOCOL_HEADERS if header in response.headers)
        outcomes.append((step, response.status_code, code, present))
        return response

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layer = b"differential layer " * 1000
    call: Callable[..., httpx.Response] = client.request
    start = record("start upload", call("POST", f"/v2/{name}/blobs/uploads/"))
    location = start.headers["location"]
    patched = record(
        "patch chunk",
        call(
            "PATCH",
            location,
            content=layer[:5000],
            headers={"Content-Type": "application/octet-stream", "Content-Range": "0-4999"},
        ),
    )
    location = patched.headers["location"]
    record("upload status", call("GET", location))
    location = record(
        "patch rest",
        call(
            "PATCH",
            location,
            content=layer[5000:],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"5000-{len(layer) - 1}",
            },
        ),
    ).headers["location"]
    fresh = call("POST", f"/v2/{name}/blobs/uploads/").headers["location"]
    record(
        "out-of-order chunk",
        call(
            "PATCH",
            fresh,
            content=layer[6000:7000],
            headers={"Content-Type": "application/octet-stream", "Content-Range": "6000-6999"},
        ),
    )
    record("finish with wrong digest", call("PUT", location + "&digest=" + digest_of(b"nope")))
    record("finish", call("PUT", location + "&digest=" + digest_of(layer)))
    record("head blob", call("HEAD", f"/v2/{name}/blobs/{digest_of(layer)}"))
    record("get blob", call("GET", f"/v2/{name}/blobs/{digest_of(layer)}"))
    record(
        "monolithic post",
        call(
            "POST",
            f"/v2/{name}/blobs/uploads/",
            params={"digest": digest_of(config)},
            content=config,
            headers={"Content-Type": "application/octet-stream"},
        ),
    )
    config_upload = call("POST", f"/v2/{name}/blobs/uploads/").headers["location"]
    record(
        "monolithic put",
        call(
            "PUT",
            config_upload + "&digest=" + digest_of(config),
            content=config,
            headers={"Content-Type": "application/octet-stream"},
        ),
    )
    record(
        "mount",
        call("POST", f"/v2/{name}/blobs/uploads/", params={"mount": existing_blob, "from": source}),
    )
    unknown = digest_of(b"never uploaded")
    mount_miss = record(
        "mount unknown blob",
        call("POST", f"/v2/{name}/blobs/uploads/", params={"mount": unknown, "from": source}),
    )
    record("cancel upload", call("DELETE", mount_miss.headers["location"]))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    oci = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    record("put manifest", call("PUT", f"/v2/{name}/manifests/v1", content=manifest, headers=oci))
    record(
        "put manifest by digest",
        call("PUT", f"/v2/{name}/manifests/{digest_of(manifest)}", content=manifest, headers=oci),
    )
    broken = manifest.replace(digest_of(layer).encode(), unknown.encode())
    record(
        "put manifest with unknown blob",
        call("PUT", f"/v2/{name}/manifests/v2", content=broken, headers=oci),
    )
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    record("get manifest by tag", call("GET", f"/v2/{name}/manifests/v1", headers=accept))
    record(
        "head manifest by digest",
        call("HEAD", f"/v2/{name}/manifests/{digest_of(manifest)}", headers=accept),
    )
    record("unknown manifest", call("GET", f"/v2/{name}/manifests/nope", headers=accept))
    record("unknown blob", call("GET", f"/v2/{name}/blobs/{unknown}"))
    record("tags", call("GET", f"/v2/{name}/tags/list"))
    record("referrers", call("GET", f"/v2/{name}/referrers/{digest_of(manifest)}"))
    record("delete manifest", call("DELETE", f"/v2/{name}/manifests/{digest_of(manifest)}"))
    record(
        "deleted manifest",
        call("GET", f"/v2/{name}/manifests/{digest_of(manifest)}", headers=accept),
    )
    record("delete blob", call("DELETE", f"/v2/{name}/blobs/{digest_of(config)}"))
    return outcomes


def test_push_and_manage_content_same_through_crev_as_direct(
    push_crev: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    existing = images["tool"].blobs[-1]
    scopes = ("repository:acme/diff:pull,push,delete", "repository:acme/tool:pull")
    direct = httpx.Client(
        base_url=registry.url, headers={"Authorization": f"Bearer {registry.token(*scopes)}"}
    )
    direct_outcomes = scenario(direct, "acme/diff", "acme/tool", existing)
    token = httpx.get(
        f"{push_crev.url}/api/token",
        params=[
            ("service", registry.service),
            ("scope", "repository:diff2:pull,push,delete"),
            ("scope", "repository:tool:pull"),
        ],
        auth=(registry.username, registry.password),
    ).json()["token"]
    through = httpx.Client(base_url=push_crev.url, headers={"Authorization": f"Bearer {token}"})
    crev_outcomes = scenario(through, "diff2", "tool", existing)
    assert crev_outcomes == direct_outcomes, direct_outcomes
    # The scenario really exercised the protocol, not a wall of errors.
    statuses = {step: status for step, status, _, _ in direct_outcomes}
    assert (
        statuses["finish"] == 201 and statuses["put manifest"] == 201 and statuses["mount"] == 201
    )


def test_a_reference_that_is_no_tag_or_digest_answers_like_the_registry(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    # The OCI conformance suite's "nonexistent manifest" case: the registry answers 404, and
    # crev answers the same status itself, as a registry JSON error, without asking upstream.
    token = registry.token("repository:acme/tool:pull")
    for method in ("GET", "HEAD"):
        for reference in (".INVALID_MANIFEST_NAME", "-leading-dash", "a" * 129):
            direct = httpx.request(
                method,
                f"{registry.url}/v2/acme/tool/manifests/{reference}",
                headers={"Authorization": f"Bearer {token}"},
            )
            registry.clear_logs()
            proxied = httpx.request(method, f"{crev_process.url}/v2/tool/manifests/{reference}")
            assert proxied.status_code == direct.status_code == 404, (method, reference)
            if method == "GET":
                assert proxied.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
            assert registry.access_log() == [] and registry.issuer.requests() == []


def test_a_refusal_names_the_repository_as_the_client_knows_it(
    crev_process: CrevProcess, registry: TestRegistry, images: dict[str, PushedImage]
) -> None:
    # The registry's 401 names the repository in its detail; through crev the vanity name is
    # shown, never the upstream's layout.
    direct = httpx.get(f"{registry.url}/v2/acme/private/secret/manifests/1")
    assert direct.status_code == 401 and "acme/private/secret" in direct.text
    proxied = httpx.get(f"{crev_process.url}/v2/private/secret/manifests/1")
    assert proxied.status_code == 401
    assert "acme/" not in proxied.text
    (error,) = proxied.json()["errors"]
    assert error["code"] == direct.json()["errors"][0]["code"]
    assert {entry.get("Name") for entry in error["detail"]} == {"private/secret"}
    assert int(proxied.headers["content-length"]) == len(proxied.content)
