"""Public routes against a stand-in upstream with token auth: no challenge and no login for
clients, anonymous tokens shared across clients, private content still refused, and the edge
caching headers case by case."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.rewrite.edge_cache import IMMUTABLE, NOT_SHARED
from rig.crev_process import serving_acme

DIGEST = "sha256:" + "b" * 64
MANIFEST = b'{"schemaVersion":2}'
ANONYMOUS_TOKEN = "anonymous-token"


class TokenUpstream:
    """A registry whose `acme/tool` is public and `acme/secret` private: an anonymous token
    grants pull of public repositories only, as Docker Hub's and ghcr.io's realms do."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.realm = server.url_for("/token")
        self.token_requests: list[WerkzeugRequest] = []
        server.expect_request("/token").respond_with_handler(self._token)
        server.expect_request(re.compile(r"/v2/(acme/(tool|secret)/.*)?")).respond_with_handler(
            self._registry
        )

    def _token(self, request: WerkzeugRequest) -> WerkzeugResponse:
        self.token_requests.append(request)
        scopes = request.args.getlist("scope")
        granted = [scope for scope in scopes if "acme/secret" not in scope]
        token = ANONYMOUS_TOKEN + ("" if granted == scopes else "-without-secret")
        return WerkzeugResponse(json.dumps({"token": token, "expires_in": 300}))

    def _registry(self, request: WerkzeugRequest) -> WerkzeugResponse:
        if request.headers.get("Authorization") != f"Bearer {ANONYMOUS_TOKEN}":
            challenge = f'Bearer realm="{self.realm}",service="reg"'
            if request.path != "/v2/":
                name = "/".join(request.path.split("/")[2:4])
                challenge += f',scope="repository:{name}:pull"'
            return WerkzeugResponse(
                '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                401,
                {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
            )
        if request.path.endswith("/tags/list"):
            return WerkzeugResponse(json.dumps({"name": "acme/tool", "tags": ["1"]}))
        if "/blobs/" in request.path:
            return WerkzeugResponse(
                "", 307, {"Location": "https://storage.example/blob?sig=1", "Cache-Control": "x"}
            )
        return WerkzeugResponse(
            MANIFEST,
            headers={
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                "Docker-Content-Digest": DIGEST,
                "Cache-Control": "max-age=60",
                "CDN-Cache-Control": "max-age=999999",
            },
        )

    def paths(self) -> list[str]:
        return [request.path for request, _ in self.server.log]


@pytest.fixture
def upstream(httpserver: HTTPServer) -> TokenUpstream:
    return TokenUpstream(httpserver)


@pytest.fixture
def crev(start_crev, upstream: TokenUpstream):
    return start_crev(
        registry_host=f"127.0.0.1:{upstream.server.port}",
        registry_scheme="http",
        repo_prefix="acme",
        public="1",
        allow_push="1",
    )


def test_v2_is_answered_by_crev_with_no_challenge(crev, upstream: TokenUpstream) -> None:
    response = httpx.get(f"{crev.url}/v2/")
    assert response.status_code == 200
    assert response.json() == {}
    assert "www-authenticate" not in response.headers
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert "s-maxage" in response.headers["cache-control"]
    assert upstream.paths() == []


def test_a_pull_needs_no_login_and_tokens_are_shared_across_clients(
    crev, upstream: TokenUpstream
) -> None:
    for _ in range(3):  # three clients, each without any Authorization
        response = httpx.get(f"{crev.url}/v2/tool/manifests/1")
        assert response.status_code == 200
        assert response.content == MANIFEST
    (token_request,) = upstream.token_requests
    assert token_request.args.getlist("scope") == ["repository:acme/tool:pull"]
    assert token_request.args.get("service") == "reg"
    assert "Authorization" not in token_request.headers
    # One discovery of the realm, then the three reads with crev's token.
    assert upstream.paths() == ["/v2/", "/token", *["/v2/acme/tool/manifests/1"] * 3]


class SlowToAnswerV2(TokenUpstream):
    """The token upstream on a server that answers requests at once, whose `/v2/` takes a
    while: long enough for every cold read to find the realm unknown before it is known."""

    def _registry(self, request: WerkzeugRequest) -> WerkzeugResponse:
        if request.path == "/v2/":
            time.sleep(0.3)
        return super()._registry(request)


def test_concurrent_cold_reads_discover_the_realm_with_one_ping(start_crev) -> None:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        upstream = SlowToAnswerV2(server)
        crev = start_crev(
            registry_host=f"127.0.0.1:{server.port}",
            registry_scheme="http",
            repo_prefix="acme",
            public="1",
        )

        def pull(_: int) -> int:
            return httpx.get(f"{crev.url}/v2/tool/manifests/1", timeout=10).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(pull, range(16)))
        assert statuses == [200] * 16
        # One discovery for all sixteen, as one token for all sixteen.
        assert upstream.paths().count("/v2/") == 1
        assert len(upstream.token_requests) == 1
        assert upstream.paths().count("/v2/acme/tool/manifests/1") == 16
    finally:
        server.clear()
        server.stop()


@pytest.mark.parametrize(
    ("method", "path", "cache_control"),
    [
        ("GET", f"/v2/tool/manifests/{DIGEST}", IMMUTABLE),
        ("HEAD", f"/v2/tool/manifests/{DIGEST}", IMMUTABLE),
        ("GET", "/v2/tool/manifests/1", NOT_SHARED),
        ("HEAD", "/v2/tool/manifests/1", NOT_SHARED),
        ("GET", "/v2/tool/tags/list", NOT_SHARED),
        ("GET", f"/v2/tool/blobs/{DIGEST}", NOT_SHARED),
        ("GET", f"/v2/secret/manifests/{DIGEST}", NOT_SHARED),
    ],
    ids=["digest-get", "digest-head", "tag-get", "tag-head", "tags", "blob-redirect", "private"],
)
def test_only_content_addressed_by_digest_is_cacheable_at_the_edge(
    crev, upstream: TokenUpstream, method: str, path: str, cache_control: str
) -> None:
    response = httpx.request(method, f"{crev.url}{path}")
    assert response.headers["cache-control"] == cache_control
    # The upstream's own CDN policy never reaches the edge.
    assert "cdn-cache-control" not in response.headers


def test_a_private_repository_on_a_public_route_is_refused_and_never_marked_cacheable(
    crev, upstream: TokenUpstream
) -> None:
    response = httpx.get(f"{crev.url}/v2/secret/manifests/1")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.headers["cache-control"] == NOT_SHARED
    assert MANIFEST not in response.content
    # A client with a login of its own can still take the usual route through crev's realm.
    challenge = response.headers["www-authenticate"]
    assert f'realm="{crev.url}/api/token"' in challenge
    assert 'scope="repository:secret:pull"' in challenge


def test_a_client_login_on_a_read_is_passed_on_and_not_marked_cacheable(
    crev, upstream: TokenUpstream
) -> None:
    response = httpx.get(
        f"{crev.url}/v2/tool/manifests/{DIGEST}",
        headers={"Authorization": f"Bearer {ANONYMOUS_TOKEN}"},
    )
    assert response.status_code == 200
    assert response.headers.get("cache-control") == "max-age=60"
    assert upstream.token_requests == []


def test_a_write_without_a_login_gets_the_usual_challenge(crev, upstream: TokenUpstream) -> None:
    upstream.server.expect_oneshot_request(
        "/v2/acme/tool/blobs/uploads/", method="POST"
    ).respond_with_data(
        "{}",
        status=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="{upstream.realm}",service="reg",'
            'scope="repository:acme/tool:pull,push"'
        },
    )
    response = httpx.post(f"{crev.url}/v2/tool/blobs/uploads/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{crev.url}/api/token",service="reg",scope="repository:tool:pull,push"'
    )
    assert upstream.token_requests == []


def test_the_token_endpoint_still_serves_clients_that_log_in(crev, upstream: TokenUpstream) -> None:
    response = httpx.get(
        f"{crev.url}/api/token", params={"scope": "repository:tool:pull", "service": "reg"}
    )
    assert response.status_code == 200
    (request,) = upstream.token_requests
    assert parse_qs(urlsplit(request.url).query)["scope"] == ["repository:acme/tool:pull"]


def test_a_public_route_to_an_upstream_without_token_auth(start_crev, httpserver) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(MANIFEST)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        public="1",
    )
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1")
    assert response.status_code == 200
    assert response.content == MANIFEST
    (_, (forwarded, _)) = httpserver.log
    assert "Authorization" not in forwarded.headers


def test_answers_crev_gives_itself_are_logged_without_an_upstream_status(
    crev, upstream: TokenUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="crev")
    import time

    httpx.get(f"{crev.url}/v2/")
    httpx.get(f"{crev.url}/v2/tool/manifests/1")
    # A request is logged once its answer has gone out: wait for the line.
    expected = ("GET /v2/ 200 upstream=- ", "GET /v2/tool/manifests/1 200 upstream=200 ")

    def logged() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name == "crev"]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        any(line.startswith(start) for line in logged()) for start in expected
    ):
        time.sleep(0.02)
    for start in expected:
        assert any(line.startswith(start) for line in logged()), logged()
