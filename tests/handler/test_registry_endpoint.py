"""The registry endpoint against a stand-in upstream (pytest-httpserver)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from rig.crev_process import serving_acme
from tests.support.keepalive_upstream import KeepAliveServer

DIGEST = "sha256:" + "a" * 64
MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


@pytest.fixture
def crev(start_crev, httpserver: HTTPServer):
    return start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", repo_prefix="acme"
    )


def error_of(response: httpx.Response) -> dict:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


def test_base_challenge_points_at_crev_token_endpoint(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="reg"'},
    )
    response = httpx.get(f"{crev.url}/v2/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{crev.url}/api/token",service="reg"'
    )


def test_v2_without_slash_is_the_base(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    assert httpx.get(f"{crev.url}/v2").status_code == 200


def test_manifest_challenge_scope_shown_as_client_names_it(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}",
        status=401,
        headers={
            "WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="reg",'
            'scope="repository:acme/tool:pull"'
        },
    )
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1")
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{crev.url}/api/token",service="reg",scope="repository:tool:pull"'
    )


def test_forwarded_host_and_proto_make_the_realm(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": 'Bearer realm="http://a/t"'}
    )
    response = httpx.get(
        f"{crev.url}/v2/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "acme.dev"}
    )
    assert response.headers["www-authenticate"] == 'Bearer realm="https://acme.dev/api/token"'


def test_manifest_get_forwards_accept_values_and_passes_body(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/team/tool/manifests/1").respond_with_data(
        MANIFEST,
        headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json",
            "Docker-Content-Digest": DIGEST,
            "ETag": f'"{DIGEST}"',
            "Docker-Distribution-API-Version": "registry/2.0",
            "RateLimit-Remaining": "99;w=21600",
            "Set-Cookie": "session=secret",
        },
    )
    accepts = [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
    response = httpx.get(
        f"{crev.url}/v2/team/tool/manifests/1",
        headers=[("Accept", value) for value in accepts] + [("Cookie", "c=1")],
    )
    assert response.status_code == 200
    assert response.content == MANIFEST
    assert response.headers["docker-content-digest"] == DIGEST
    assert response.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
    assert response.headers["etag"] == f'"{DIGEST}"'
    assert response.headers["ratelimit-remaining"] == "99;w=21600"
    assert "set-cookie" not in response.headers
    upstream_request, _ = httpserver.log[0]
    # WSGI folds repeated fields into one comma-joined value; order is what matters.
    received = [v.strip() for h in upstream_request.headers.getlist("Accept") for v in h.split(",")]
    assert received == accepts
    assert "Cookie" not in upstream_request.headers
    assert upstream_request.headers["Host"] == f"127.0.0.1:{httpserver.port}"


def test_head_passes_length_without_body(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1", method="HEAD").respond_with_data(
        MANIFEST, headers={"Docker-Content-Digest": DIGEST}
    )
    response = httpx.head(f"{crev.url}/v2/tool/manifests/1")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(MANIFEST))
    assert response.headers["docker-content-digest"] == DIGEST
    assert response.content == b""


def test_blob_redirect_to_storage_passes_untouched_and_is_not_followed(
    crev, httpserver: HTTPServer
) -> None:
    storage = HTTPServer(host="127.0.0.1", port=0)
    storage.start()
    try:
        target = storage.url_for("/blob?X-Amz-Signature=abc%2Fdef&X-Amz-Expires=60")
        httpserver.expect_request(f"/v2/acme/tool/blobs/{DIGEST}").respond_with_data(
            "", status=307, headers={"Location": target}
        )
        response = httpx.get(
            f"{crev.url}/v2/tool/blobs/{DIGEST}", headers={"Authorization": "Bearer tok"}
        )
        assert response.status_code == 307
        assert response.headers["location"] == target
        assert storage.log == []
        upstream_request, _ = httpserver.log[0]
        assert upstream_request.headers["Authorization"] == "Bearer tok"
    finally:
        storage.stop()


def test_same_host_locations(crev, httpserver: HTTPServer) -> None:
    upstream = f"http://127.0.0.1:{httpserver.port}"
    httpserver.expect_request(f"/v2/acme/a/blobs/{DIGEST}").respond_with_data(
        "", status=302, headers={"Location": f"/v2/acme/b/blobs/{DIGEST}?x=1"}
    )
    httpserver.expect_request(f"/v2/acme/c/blobs/{DIGEST}").respond_with_data(
        "", status=302, headers={"Location": "/artifacts-downloads/namespaces/p/blob?sig=1"}
    )
    httpserver.expect_request(f"/v2/acme/d/blobs/{DIGEST}").respond_with_data(
        "", status=302, headers={"Location": f"{upstream}/v2/acme/e/blobs/{DIGEST}"}
    )
    a = httpx.get(f"{crev.url}/v2/a/blobs/{DIGEST}")
    c = httpx.get(f"{crev.url}/v2/c/blobs/{DIGEST}")
    d = httpx.get(f"{crev.url}/v2/d/blobs/{DIGEST}")
    assert a.headers["location"] == f"/v2/b/blobs/{DIGEST}?x=1"
    assert c.headers["location"] == f"{upstream}/artifacts-downloads/namespaces/p/blob?sig=1"
    assert d.headers["location"] == f"/v2/e/blobs/{DIGEST}"


def test_tag_list_shows_vanity_name_and_rewrites_link(crev, httpserver: HTTPServer) -> None:
    body = json.dumps({"name": "acme/tool", "tags": ["1", "2"]}).encode()
    httpserver.expect_request(
        "/v2/acme/tool/tags/list", query_string="n=2&last=0"
    ).respond_with_data(
        body,
        content_type="application/json",
        headers={"Link": '</v2/acme/tool/tags/list?n=2&last=2>; rel="next"'},
    )
    response = httpx.get(f"{crev.url}/v2/tool/tags/list?n=2&last=0")
    assert response.status_code == 200
    assert response.json() == {"name": "tool", "tags": ["1", "2"]}
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["link"] == '</v2/tool/tags/list?n=2&last=2>; rel="next"'


def test_range_request_passes_both_ways(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        f"/v2/acme/tool/blobs/{DIGEST}", headers={"Range": "bytes=2-4"}
    ).respond_with_data(
        b"cde",
        status=206,
        headers={"Content-Range": "bytes 2-4/10", "Accept-Ranges": "bytes"},
    )
    response = httpx.get(f"{crev.url}/v2/tool/blobs/{DIGEST}", headers={"Range": "bytes=2-4"})
    assert response.status_code == 206
    assert response.content == b"cde"
    assert response.headers["content-range"] == "bytes 2-4/10"


def test_large_blob_streams_unchanged(crev, httpserver: HTTPServer) -> None:
    blob = bytes(range(256)) * 40_000  # 10 MB, several chunks
    httpserver.expect_request(f"/v2/acme/tool/blobs/{DIGEST}").respond_with_data(blob)
    response = httpx.get(f"{crev.url}/v2/tool/blobs/{DIGEST}")
    assert response.content == blob


@pytest.mark.parametrize(
    "path",
    [
        "/v2/Tool/manifests/1",
        "/v2/acme%2Fother/manifests/1",
        "/v2/%2e%2e/other/manifests/1",
        "/v2/tool//x/manifests/1",
        "/v2/../other/manifests/1",
        "/v2/a/../../b/manifests/1",
        "/v2/tool\\x/manifests/1",
    ],
)
def test_invalid_names_are_refused_and_not_forwarded(
    crev, httpserver: HTTPServer, path: str
) -> None:
    with socket.create_connection(("127.0.0.1", crev.server.server_address[1])) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = b""
        while chunk := conn.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert json.loads(body)["errors"][0]["code"] == "NAME_INVALID"
    assert httpserver.log == []


def test_catalog_and_unknown_routes_are_unsupported(crev, httpserver: HTTPServer) -> None:
    for path in ("/v2/_catalog", "/v2/tool/unknown/x", "/v2/tool"):
        response = httpx.get(f"{crev.url}{path}")
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "UNSUPPORTED"
    assert httpserver.log == []


def test_writes_are_refused_with_allow(crev, httpserver: HTTPServer) -> None:
    # Allow lists what the resource supports: reads for content, nothing for upload sessions.
    for method, path, allow in [
        ("POST", "/v2/tool/blobs/uploads/", ""),
        ("PUT", "/v2/tool/manifests/1", "GET, HEAD"),
        ("DELETE", "/v2/tool/manifests/1", "GET, HEAD"),
        ("PATCH", "/v2/tool/blobs/uploads/x", ""),
    ]:
        response = httpx.request(method, f"{crev.url}{path}", content=b"x")
        assert response.status_code == 405, (method, path)
        assert (
            error_of(response)["message"] == f"{method} is not served: this registry is read-only"
        )
        assert response.headers["allow"] == allow
    assert httpserver.log == []


def test_upstream_refusing_connections_is_502(start_crev) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    crev = start_crev(registry_host=f"127.0.0.1:{port}", registry_scheme="http")
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1")
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "UNAVAILABLE"
    assert f"127.0.0.1:{port}" in error["message"]


def test_upstream_timeout_is_504(start_crev, httpserver: HTTPServer) -> None:
    def slow(request: WerkzeugRequest) -> WerkzeugResponse:
        time.sleep(2)
        return WerkzeugResponse("{}")

    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_handler(slow)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        upstream_timeout="0.5",
    )
    started = time.monotonic()
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1", timeout=10)
    assert response.status_code == 504
    assert time.monotonic() - started < 1.9
    assert "did not answer within 0.5 s" in error_of(response)["message"]


def test_malformed_upstream_challenge_is_502(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": 'Bearer realm="unterminated'}
    )
    response = httpx.get(f"{crev.url}/v2/")
    assert response.status_code == 502
    assert "malformed header" in error_of(response)["message"]


def test_invalid_setting_is_a_500_registry_error(start_crev, httpserver: HTTPServer) -> None:
    crev = start_crev(registry_host="https://ghcr.io/acme")
    response = httpx.get(f"{crev.url}/v2/")
    assert response.status_code == 500
    assert "CREV_REGISTRY_HOST" in error_of(response)["message"]


def test_connection_is_kept_alive_across_requests(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    with httpx.Client() as client:
        first = client.get(f"{crev.url}/v2/")
        second = client.get(f"{crev.url}/v2/")
    assert first.status_code == second.status_code == 200
    assert first.headers.get("connection") != "close"


def test_not_modified_answers_keep_their_upstream_connection(start_crev) -> None:
    # A 304 has no body, with or without a length (RFC 9112 6.3); crev passes it on without
    # one and reads the upstream's answer to its end, so its connection serves the next.
    upstream = KeepAliveServer(lambda n: b'HTTP/1.1 304 Not Modified\r\nETag: "m"\r\n\r\n')
    try:
        crev = start_crev(**serving_acme(upstream.url.removeprefix("http://")))
        with httpx.Client() as client:
            for _ in range(3):
                response = client.get(
                    f"{crev.url}/v2/tool/manifests/1", headers={"If-None-Match": '"m"'}
                )
                assert response.status_code == 304
                assert response.headers["etag"] == '"m"'
        assert len(upstream.requests) == 3
        assert upstream.connections == 1
    finally:
        upstream.close()
