"""Blob reads an upstream redirects to signed storage: kept at the edge as a 308 while the signed
URL lives (routes where crev holds the upstream tokens), handed on as they came otherwise, and
followed by crev itself on a route that follows redirects, with no credential reaching storage
(a stand-in that records every request's headers)."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.rewrite.edge_cache import IMMUTABLE, NOT_SHARED
from rig.signed_storage import SignedStorage, run_signed_storage
from tests.support.crev_server import CrevServer

BLOB = bytes(range(256)) * 4096  # 1 MiB
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
UPSTREAM_TOKEN = "upstream-token"
# Where Artifact Registry sends a blob read: a path on its own host.
DOWNLOADS = "/artifacts-downloads/"

StartCrev = Callable[..., CrevServer]


class RedirectingUpstream:
    """A registry with token auth whose blob reads answer 307 to a signed URL on `storage`
    (or, with `relative`, to a path on its own host that serves the bytes)."""

    def __init__(self, server: HTTPServer, storage: SignedStorage) -> None:
        self.server = server
        self.storage = storage
        self.lifetime = 1200
        self.signed_ago = 0.0
        self.relative = False
        self.location: str | None = None  # a fixed Location instead of a signed one
        self.downloads: list[WerkzeugRequest] = []
        server.expect_request("/token").respond_with_handler(self._token)
        server.expect_request(re.compile(r"/v2/.*")).respond_with_handler(self._registry)
        server.expect_request(re.compile(f"{DOWNLOADS}.*")).respond_with_handler(self._download)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def _token(self, request: WerkzeugRequest) -> WerkzeugResponse:
        return WerkzeugResponse(json.dumps({"token": UPSTREAM_TOKEN, "expires_in": 300}))

    def _registry(self, request: WerkzeugRequest) -> WerkzeugResponse:
        if request.headers.get("Authorization") != f"Bearer {UPSTREAM_TOKEN}":
            challenge = f'Bearer realm="{self.server.url_for("/token")}",service="reg"'
            return WerkzeugResponse(
                '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                401,
                {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
            )
        if f"/blobs/{DIGEST}" not in request.path:
            return WerkzeugResponse('{"errors":[{"code":"BLOB_UNKNOWN"}]}', 404)
        if self.location is not None:
            location = self.location
        elif self.relative:
            location = f"{DOWNLOADS}{DIGEST}?token=signed-by-the-registry"
        else:
            location = self.storage.signed_url(
                DIGEST,
                method=request.method,
                lifetime=self.lifetime,
                signed_at=time.time() - self.signed_ago,
            )
        return WerkzeugResponse(
            b"",
            307,
            {
                "Location": location,
                "Docker-Distribution-Api-Version": "registry/2.0",
                "Cache-Control": "max-age=1200",
            },
        )

    def _download(self, request: WerkzeugRequest) -> WerkzeugResponse:
        self.downloads.append(request)
        return WerkzeugResponse(BLOB, content_type="application/octet-stream")


@pytest.fixture
def storage() -> Iterator[SignedStorage]:
    with run_signed_storage({DIGEST: BLOB}) as running:
        yield running


@pytest.fixture
def upstream(httpserver: HTTPServer, storage: SignedStorage) -> RedirectingUpstream:
    return RedirectingUpstream(httpserver, storage)


def crev_for(start_crev: StartCrev, upstream: RedirectingUpstream, **settings: str) -> CrevServer:
    return start_crev(
        registry_host=upstream.host, registry_scheme="http", repo_prefix="acme", **settings
    )


def blob_url(crev: CrevServer) -> str:
    return f"{crev.url}/v2/tool/blobs/{DIGEST}"


def logged_in() -> dict[str, str]:
    """A client's own login: the upstream's token, as a client gets it through crev's realm."""
    return {"Authorization": f"Bearer {UPSTREAM_TOKEN}"}


# ------------------------------------------------------------- kept at the edge as a 308


def test_a_public_routes_blob_redirect_becomes_a_308_the_edge_keeps_until_near_expiry(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(start_crev, upstream, public="1")
    before = time.time()
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 308
    location = answer.headers["location"]
    assert location.startswith(f"{upstream.storage.url}/blobs/{DIGEST}/data?")
    directives = answer.headers["cache-control"]
    match = re.fullmatch(r"public, max-age=0, s-maxage=(\d+)", directives)
    assert match, directives
    # 20 minutes, less the minute's margin, less the second or two the answer took.
    assert 1200 - 60 - (time.time() - before) - 1 <= int(match[1]) <= 1200 - 60
    # The same URL, still good for the client's GET.
    assert httpx.get(location).content == BLOB


def test_a_long_lived_signature_is_kept_an_hour_at_most(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    upstream.lifetime = 7 * 24 * 3600
    crev = crev_for(start_crev, upstream, public="1")
    answer = httpx.get(blob_url(crev))
    assert (answer.status_code, answer.headers["cache-control"]) == (
        308,
        "public, max-age=0, s-maxage=3600",
    )


@pytest.mark.parametrize(
    ("lifetime", "signed_ago", "location"),
    [
        (1200, 1300, None),  # expired
        (100, 50, None),  # 50 s left: nearly expired
        (120, 60, None),  # a minute left: nothing for the edge to keep
        (1200, 0, "https://storage.example/blob?sig=x&sp=r"),  # unreadable
        (1200, 0, "https://storage.example/blob"),  # unsigned
    ],
)
def test_an_expired_nearly_expired_or_unreadable_signature_is_never_kept(
    start_crev: StartCrev,
    upstream: RedirectingUpstream,
    lifetime: int,
    signed_ago: float,
    location: str | None,
) -> None:
    upstream.lifetime, upstream.signed_ago, upstream.location = lifetime, signed_ago, location
    crev = crev_for(start_crev, upstream, public="1")
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 307
    assert answer.headers["cache-control"] == NOT_SHARED


def test_a_heads_redirect_is_never_kept(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(start_crev, upstream, public="1")
    answer = httpx.head(blob_url(crev))
    assert answer.status_code == 307
    assert answer.headers["cache-control"] == NOT_SHARED
    # Signed for HEAD, as the registry signs it for the method asked.
    assert httpx.head(answer.headers["location"]).status_code == 200


def test_with_server_side_credentials_only_a_request_without_authorization_gets_a_308(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(
        start_crev, upstream, upstream_username="crev", upstream_password="server-secret"
    )
    assert httpx.get(blob_url(crev)).status_code == 308
    carried = httpx.get(blob_url(crev), headers={"Authorization": "Bearer anything"})
    assert carried.status_code == 307
    assert carried.headers["cache-control"] == NOT_SHARED


def test_routes_where_clients_log_in_hand_the_redirect_on_as_it_came(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(start_crev, upstream)
    answer = httpx.get(blob_url(crev), headers=logged_in())
    assert answer.status_code == 307
    assert answer.headers["cache-control"] == "max-age=1200"
    assert answer.headers["location"].startswith(upstream.storage.url)


# ------------------------------------------------------------- followed by crev


@pytest.mark.parametrize("route", ["public", "login", "server-credentials"])
def test_a_followed_redirect_answers_the_blob_and_storage_never_sees_credentials(
    start_crev: StartCrev, upstream: RedirectingUpstream, route: str
) -> None:
    settings = {
        "public": {"public": "1"},
        "login": {},
        "server-credentials": {"upstream_username": "crev", "upstream_password": "s3cret"},
    }[route]
    crev = crev_for(start_crev, upstream, follow_redirects="1", **settings)
    headers = {**(logged_in() if route == "login" else {}), "Cookie": "session=client"}
    answer = httpx.get(blob_url(crev), headers=headers)
    assert answer.status_code == 200
    assert answer.content == BLOB
    assert answer.headers["content-length"] == str(len(BLOB))
    assert answer.headers["docker-content-digest"] == DIGEST
    assert "location" not in answer.headers
    assert not any(name.startswith("x-amz-") for name in answer.headers)
    if route != "login":
        assert answer.headers["cache-control"] == IMMUTABLE
    (read,) = upstream.storage.seen()
    assert read.status == 200
    for name in ("authorization", "cookie", "proxy-authorization"):
        assert read.header(name) is None, read.headers
    # The upstream itself did get the route's token: the one place it belongs.
    blob_reads = [r for r, _ in upstream.server.log if "/blobs/" in r.path]
    assert [r.headers.get("Authorization") for r in blob_reads] == [f"Bearer {UPSTREAM_TOKEN}"]


def test_a_followed_range_read_answers_206_with_exactly_that_range(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.get(blob_url(crev), headers={"Range": "bytes=1000-300999"})
    assert answer.status_code == 206
    assert answer.content == BLOB[1000:301000]
    assert answer.headers["content-range"] == f"bytes 1000-300999/{len(BLOB)}"
    assert answer.headers["cache-control"] == NOT_SHARED
    (read,) = upstream.storage.seen()
    assert (read.status, read.header("range")) == (206, "bytes=1000-300999")


def test_a_followed_head_answers_the_blobs_head(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.head(blob_url(crev))
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(len(BLOB))
    assert answer.headers["docker-content-digest"] == DIGEST
    assert [(r.method, r.status) for r in upstream.storage.seen()] == [("HEAD", 200)]


def test_a_relative_location_is_read_from_the_upstreams_host_without_credentials(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    upstream.relative = True
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 200
    assert answer.content == BLOB
    (download,) = upstream.downloads
    assert download.args["token"] == "signed-by-the-registry"
    assert "Authorization" not in download.headers


def test_storage_refusing_a_followed_read_is_a_502_naming_storage(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    upstream.signed_ago = 1300  # expired
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 502
    (error,) = answer.json()["errors"]
    assert f"storage {upstream.storage.host} answered the blob read with 403" in error["message"]


def test_a_redirect_back_to_the_registry_api_is_handed_on_not_followed(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    upstream.location = f"/v2/acme/other/blobs/{DIGEST}"
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 307
    assert answer.headers["location"] == f"/v2/other/blobs/{DIGEST}"
    assert upstream.storage.seen() == []


def test_storage_redirecting_in_circles_is_a_502(
    start_crev: StartCrev, upstream: RedirectingUpstream, httpserver: HTTPServer
) -> None:
    upstream.location = "/elsewhere/blob"
    httpserver.expect_request("/elsewhere/blob").respond_with_data(
        "", 302, {"Location": "/elsewhere/blob"}
    )
    crev = crev_for(start_crev, upstream, public="1", follow_redirects="1")
    answer = httpx.get(blob_url(crev))
    assert answer.status_code == 502
    (error,) = answer.json()["errors"]
    assert "redirected the blob read more than 3 times" in error["message"]


def test_storage_that_never_answers_is_a_504_within_the_upstream_timeout(
    start_crev: StartCrev, upstream: RedirectingUpstream
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        upstream.location = f"http://127.0.0.1:{silent.getsockname()[1]}/blob?X-Amz-Expires=1"
        crev = crev_for(
            start_crev, upstream, public="1", follow_redirects="1", upstream_timeout="1"
        )
        started = time.monotonic()
        answer = httpx.get(blob_url(crev), timeout=30)
        took = time.monotonic() - started
    assert answer.status_code == 504
    assert "did not answer within 1 s" in answer.json()["errors"][0]["message"]
    assert took < 10
