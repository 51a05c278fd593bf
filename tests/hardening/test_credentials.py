"""Credentials and reach: a client's `Authorization` goes to the upstream registry and its token
realm only, never to a redirect target; crev never follows a redirect; no log line carries an
`Authorization` value, a token or a password."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from rig import PushedImage, TestRegistry
from rig.crev_process import CrevProcess, serving_acme
from rig.images import MANIFEST_ACCEPT
from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import (
    MANIFEST,
    UPSTREAM_MARK,
    Behaviour,
    RawRequest,
    RawUpstream,
    cut_mid_body,
    respond,
)

DIGEST = "sha256:" + "b" * 64
PASSWORD = "pa55-W0RD-never-logged"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
CLIENT_TOKEN = "client-bearer-token-never-logged"
UPSTREAM_TOKEN = "upstream-issued-token-never-logged"
SECRETS = (PASSWORD, BASIC.split()[1], CLIENT_TOKEN, UPSTREAM_TOKEN)


@pytest.fixture
def auth() -> Iterator[RawUpstream]:
    """The upstream's token realm, on a host of its own."""
    token = f'{{"token":"{UPSTREAM_TOKEN}","access_token":"{UPSTREAM_TOKEN}"}}'.encode()
    with RawUpstream(route=lambda request: respond(200, token)) as server:
        yield server


def registry_route(auth: RawUpstream, storage: RawUpstream) -> Callable[[RawRequest], Behaviour]:
    """An upstream that challenges with `auth`'s realm and redirects blobs to `storage`."""
    challenge = f'Bearer realm="{auth.url}/token",service="reg",scope="repository:acme/tool:pull"'

    def route(request: RawRequest) -> Behaviour:
        if request.header("authorization") is None:
            return respond(401, b"{}", [("WWW-Authenticate", challenge)])
        if "/blobs/" in request.path:
            return respond(307, b"", [("Location", f"{storage.url}/blob?sig=1")])
        return respond(200, MANIFEST, [UPSTREAM_MARK])

    return route


def test_client_authorization_reaches_the_registry_and_its_realm_only(
    crev: CrevServer,
    upstream: RawUpstream,
    auth: RawUpstream,
    witness: RawUpstream,
    http: httpx.Client,
) -> None:
    upstream.route = registry_route(auth, storage=witness)
    challenge = http.get(f"{crev.url}/v2/")
    assert challenge.status_code == 401
    assert f'realm="{crev.url}/api/token"' in challenge.headers["www-authenticate"]

    token = http.get(
        f"{crev.url}/api/token",
        params={"service": "reg", "scope": "repository:tool:pull"},
        headers={"Authorization": BASIC},
    )
    assert token.json()["token"] == UPSTREAM_TOKEN
    bearer = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    manifest = http.get(f"{crev.url}/v2/tool/manifests/1", headers=bearer)
    assert manifest.status_code == 200
    blob = http.get(f"{crev.url}/v2/tool/blobs/{DIGEST}", headers=bearer)
    assert blob.status_code == 307
    assert blob.headers["location"] == f"{witness.url}/blob?sig=1"

    (realm_request,) = auth.requests
    assert realm_request.header("authorization") == BASIC
    sent = {request.path: request.header("authorization") for request in upstream.requests}
    assert sent["/v2/acme/tool/manifests/1"] == f"Bearer {CLIENT_TOKEN}"
    assert sent[f"/v2/acme/tool/blobs/{DIGEST}"] == f"Bearer {CLIENT_TOKEN}"
    assert all(value != BASIC for value in sent.values()), "Basic credentials went to the registry"
    assert witness.saw_nothing(), "a redirect target was contacted"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_redirects_are_passed_back_never_followed(
    crev: CrevServer,
    upstream: RawUpstream,
    witness: RawUpstream,
    http: httpx.Client,
    status: int,
    method: str,
) -> None:
    target = f"{witness.url}/v2/acme/tool/blobs/{DIGEST}?X-Amz-Signature=abc"
    upstream.route = lambda request: respond(status, b"", [("Location", target)])
    response = http.request(
        method,
        f"{crev.url}/v2/tool/blobs/{DIGEST}",
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    assert response.status_code == status
    assert response.headers["location"] == target
    assert len(upstream.requests) == 1
    assert witness.saw_nothing()


def test_a_same_host_redirect_outside_the_prefix_is_not_followed(
    crev: CrevServer, upstream: RawUpstream, http: httpx.Client
) -> None:
    upstream.route = lambda request: (
        respond(302, b"", [("Location", "/artifacts-downloads/blob?sig=1")])
        if "/blobs/" in request.path
        else respond(200, b"{}")
    )
    response = http.get(
        f"{crev.url}/v2/tool/blobs/{DIGEST}", headers={"Authorization": f"Bearer {CLIENT_TOKEN}"}
    )
    assert response.status_code == 302
    assert response.headers["location"] == f"{upstream.url}/artifacts-downloads/blob?sig=1"
    assert upstream.paths() == [f"/v2/acme/tool/blobs/{DIGEST}"]


def test_server_side_credentials_go_to_the_realm_only_and_never_to_a_client(
    start_crev: Callable[..., CrevServer],
    upstream: RawUpstream,
    auth: RawUpstream,
    witness: RawUpstream,
    http: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream.route = registry_route(auth, storage=witness)
    crev = start_crev(
        **serving_acme(upstream.host),
        upstream_username="robot",
        upstream_password=PASSWORD,
        upstream_timeout="1",
    )
    manifest = http.get(f"{crev.url}/v2/tool/manifests/1")
    blob = http.get(f"{crev.url}/v2/tool/blobs/{DIGEST}")
    token = http.get(f"{crev.url}/api/token", params={"scope": "repository:tool:pull"})
    assert manifest.status_code == 200
    assert blob.status_code == 307
    robot = "Basic " + base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
    assert {request.header("authorization") for request in auth.requests} == {robot}
    upstream_auth = {request.header("authorization") for request in upstream.requests}
    assert robot not in upstream_auth
    assert f"Bearer {UPSTREAM_TOKEN}" in upstream_auth
    for response in (manifest, blob, token):
        shown = response.content + str(response.headers).encode()
        assert UPSTREAM_TOKEN.encode() not in shown
        assert PASSWORD.encode() not in shown
    assert witness.saw_nothing()
    assert_no_secrets(crev_log(caplog))


# ------------------------------------------------------------------ logs


def crev_log(caplog: pytest.LogCaptureFixture) -> str:
    """What crev's own logger wrote: formatted lines, and each record's raw message and args.

    The test's own httpx client logs its URLs to the same process, so records are filtered by
    logger; `python -m crev` configures only the `crev` logger (checked end to end below)."""
    records = [
        record
        for record in caplog.records
        if record.name == "crev" or record.name.startswith("crev.")
    ]
    lines = [f"{record.getMessage()} {record.msg!r} {record.args!r}" for record in records]
    lines += [record.exc_text or "" for record in records]
    return "\n".join(lines)


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret ({secret[:6]}...) is in the log"
    assert "Authorization:" not in text


def test_the_in_process_log_never_holds_credentials(
    crev: CrevServer,
    upstream: RawUpstream,
    auth: RawUpstream,
    witness: RawUpstream,
    http: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    registry = registry_route(auth, storage=witness)

    def route(request: RawRequest) -> Behaviour:
        if "/cut/" in request.path:
            return cut_mid_body(10_000, b"x" * 100, reset=False)
        if "/fail/" in request.path:
            return respond(500, b"{}")
        return registry(request)

    upstream.route = route
    bearer = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    http.get(f"{crev.url}/v2/")
    http.get(f"{crev.url}/api/token?scope=repository:tool:pull", headers={"Authorization": BASIC})
    http.post(
        f"{crev.url}/api/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    )
    http.get(f"{crev.url}/api/token?scope=repository:tool:pull&password={PASSWORD}")
    http.get(f"{crev.url}/v2/tool/manifests/1", headers=bearer)
    http.get(f"{crev.url}/v2/tool/blobs/{DIGEST}", headers=bearer)
    http.get(f"{crev.url}/v2/fail/manifests/1", headers=bearer)
    with pytest.raises(httpx.HTTPError):
        http.get(f"{crev.url}/v2/cut/blobs/{DIGEST}", headers=bearer)
    http.get(f"{crev.url}/v2/Bad/manifests/1", headers=bearer)
    logged = crev_log(caplog)
    assert "/v2/tool/manifests/1" in logged, "the request log was not captured"
    assert "upstream body failed" in logged, "the cut body was not logged"
    assert_no_secrets(crev_log(caplog))


def test_a_private_pull_leaves_no_credentials_in_the_process_log(
    crev_process: CrevProcess,
    registry: TestRegistry,
    images: dict[str, PushedImage],
) -> None:
    private = images["private"]
    name = private.name.removeprefix("acme/")
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    with httpx.Client(base_url=crev_process.url, timeout=20) as client:
        challenge = client.get(f"/v2/{name}/manifests/{private.tag}")
        assert challenge.status_code == 401
        assert "/api/token" in challenge.headers["www-authenticate"]
        anonymous = client.get(
            "/api/token", params={"service": registry.service, "scope": f"repository:{name}:pull"}
        )
        token = client.get(
            "/api/token",
            params={"service": registry.service, "scope": f"repository:{name}:pull"},
            headers={"Authorization": f"Basic {basic}"},
        ).json()["token"]
        bearer = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}
        manifest = client.get(f"/v2/{name}/manifests/{private.tag}", headers=bearer)
        assert manifest.status_code == 200
        assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == private.digest
        for digest in private.blobs:
            blob = client.get(f"/v2/{name}/blobs/{digest}", headers=bearer)
            assert "sha256:" + hashlib.sha256(blob.content).hexdigest() == digest
        denied = client.get(
            f"/v2/{name}/manifests/{private.tag}",
            headers={"Authorization": f"Bearer {anonymous.json().get('token', '')}"},
        )
        assert denied.status_code in (401, 403)
    time.sleep(0.2)  # the log is line-buffered; let the last lines land
    log = crev_process.log()
    assert f"/v2/{name}/manifests/{private.tag}" in log, "the request log is missing"
    for secret in (registry.password, basic, token, anonymous.json().get("token", "-")):
        assert secret not in log
    assert "Bearer " not in log
    assert "Basic " not in log
