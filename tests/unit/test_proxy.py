"""The registry endpoint (crev/proxy.py) called as a function, against a stand-in upstream: the
request mapped under the route's namespace, the answer rewritten into the client's names, and
crev's own upstream authentication where the route has it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.config import Settings
from crev.errors import UpstreamError
from crev.proxy import serve_registry
from crev.upstream.response import UpstreamResponse
from tests.support.refusals import refused
from tests.support.service_calls import (
    body_of,
    json_of,
    request,
    settings_for,
    with_server_credentials,
)

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
MANIFEST = b'{"schemaVersion":2}'


def acme(upstream: HTTPServer, **variables: str) -> Settings:
    return settings_for(upstream, repo_prefix="acme", **variables)


def paths(upstream: HTTPServer) -> list[str]:
    return [r.full_path.rstrip("?") for r, _ in upstream.log]


def test_a_pull_is_asked_under_the_prefix_with_the_clients_headers(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        MANIFEST, headers={"Docker-Content-Digest": DIGEST, "Set-Cookie": "a=b"}
    )
    response = serve_registry(
        request(
            "GET",
            "/v2/tool/manifests/1",
            headers=[
                ("Accept", "application/vnd.oci.image.index.v1+json"),
                ("Accept", "application/vnd.oci.image.manifest.v1+json"),
                ("Authorization", "Bearer client"),
                ("Cookie", "vanity=1"),
            ],
        ),
        acme(httpserver),
    )
    assert (response.status, response.upstream_status) == (200, 200)
    assert body_of(response) == MANIFEST
    assert response.headers.get("Docker-Content-Digest") == DIGEST
    assert "Set-Cookie" not in response.headers
    (asked,) = [r for r, _ in httpserver.log]
    # WSGI folds repeated fields into one comma-joined value; order is what matters.
    assert [value.strip() for value in asked.headers["Accept"].split(",")] == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
    assert asked.headers["Authorization"] == "Bearer client"
    assert "Cookie" not in asked.headers


def test_a_challenge_names_crevs_token_endpoint_and_the_clients_scope(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}",
        status=401,
        headers={
            "WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="reg",'
            'scope="repository:acme/tool:pull"'
        },
    )
    response = serve_registry(request("GET", "/v2/tool/manifests/1"), acme(httpserver))
    assert response.status == 401
    assert response.headers.get("WWW-Authenticate") == (
        'Bearer realm="https://acme.dev/api/token",service="reg",scope="repository:tool:pull"'
    )


def test_locations_and_links_show_vanity_paths(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/blobs/" + DIGEST).respond_with_data(
        "", status=307, headers={"Location": "https://storage.example/blob?sig=1"}
    )
    httpserver.expect_request("/v2/acme/tool/blobs/" + OTHER).respond_with_data(
        "", status=307, headers={"Location": f"/v2/acme/tool/blobs/{OTHER}?mirror=1"}
    )
    settings = acme(httpserver)
    storage = serve_registry(request("GET", f"/v2/tool/blobs/{DIGEST}"), settings)
    assert storage.headers.get("Location") == "https://storage.example/blob?sig=1"
    same = serve_registry(request("GET", f"/v2/tool/blobs/{OTHER}"), settings)
    assert same.headers.get("Location") == f"/v2/tool/blobs/{OTHER}?mirror=1"
    # Redirects are passed on, never followed.
    assert len(httpserver.log) == 2


def test_a_tag_list_shows_the_clients_name(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/tags/list", query_string="n=2").respond_with_json(
        {"name": "acme/tool", "tags": ["1", "2"]},
        headers={"Link": '</v2/acme/tool/tags/list?n=2&last=2>; rel="next"'},
    )
    response = serve_registry(
        request("GET", "/v2/tool/tags/list", "n=2", headers=[("Accept-Encoding", "br")]),
        acme(httpserver),
    )
    assert json_of(response) == {"name": "tool", "tags": ["1", "2"]}
    assert response.headers.get("Link") == '</v2/tool/tags/list?n=2&last=2>; rel="next"'
    # crev reads the list itself, so it asks for a coding it can read.
    (asked,) = [r for r, _ in httpserver.log]
    assert asked.headers["Accept-Encoding"] == "identity"


def test_a_tag_list_that_is_no_json_is_an_upstream_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/tags/list").respond_with_data("<html>")
    with pytest.raises(UpstreamError):
        serve_registry(request("GET", "/v2/tool/tags/list"), acme(httpserver))


def test_an_error_shows_names_as_the_client_knows_them(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_json(
        {
            "errors": [
                {
                    "code": "UNAUTHORIZED",
                    "message": "authentication required",
                    "detail": [
                        {"Type": "repository", "Name": "acme/tool", "Action": "pull"},
                        {"Type": "repository", "Name": "other/secret", "Action": "pull"},
                    ],
                }
            ]
        },
        status=401,
    )
    response = serve_registry(request("GET", "/v2/tool/manifests/1"), acme(httpserver))
    (error,) = json_of(response)["errors"]
    assert error["detail"] == [
        {"Type": "repository", "Name": "tool", "Action": "pull"},
        {"Type": "repository", "Action": "pull"},
    ]


def test_a_head_answer_has_no_body(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1", method="HEAD").respond_with_data(
        MANIFEST, headers={"Docker-Content-Digest": DIGEST}
    )
    response = serve_registry(request("HEAD", "/v2/tool/manifests/1"), acme(httpserver))
    assert response.headers.get("Content-Length") == str(len(MANIFEST))
    assert body_of(response) == b""


def test_a_malformed_upstream_challenge_is_an_upstream_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": 'Bearer realm="unterminated'}
    )
    with pytest.raises(UpstreamError) as caught:
        serve_registry(request("GET", "/v2/"), acme(httpserver))
    assert caught.value.message.startswith(
        f"upstream 127.0.0.1:{httpserver.port} sent a malformed header: "
    )


def test_refusals_reach_no_upstream(httpserver: HTTPServer) -> None:
    with refused() as refusal:
        serve_registry(request("PUT", "/v2/tool/manifests/1", body=MANIFEST), acme(httpserver))
    assert refusal.status == 405
    with refused() as refusal:
        serve_registry(
            request("PUT", "/v2/tool/manifests/1", body=MANIFEST),
            acme(httpserver, allow_push="1", max_body_bytes="8"),
        )
    assert refusal.status == 413
    with refused() as refusal:
        serve_registry(request("GET", "/v2/_catalog"), acme(httpserver))
    assert refusal.status == 404
    assert httpserver.log == []


def test_a_mount_is_kept_within_its_route(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tools/cli/blobs/uploads/").respond_with_data("", status=202)
    upstream = f"http://127.0.0.1:{httpserver.port}"
    settings = Settings.from_env(
        {
            "CREV_ROUTES": f"tools/={upstream}/acme/tools, hub/=docker.io, ={upstream}/acme",
            "CREV_ALLOW_PUSH": "1",
        }
    )
    mount = f"mount={DIGEST}"
    for source in ("tools/base", "x", "hub/alpine"):
        serve_registry(
            request("POST", "/v2/tools/cli/blobs/uploads/", f"{mount}&from={source}"), settings
        )
    mounted = f"mount={DIGEST.replace(':', '%3A')}&from=acme%2Ftools%2Fbase"
    assert paths(httpserver) == [
        f"/v2/acme/tools/cli/blobs/uploads/?{mounted}",
        # From another route (on the same registry or not) the client just uploads.
        "/v2/acme/tools/cli/blobs/uploads/",
        "/v2/acme/tools/cli/blobs/uploads/",
    ]


# --- crev's own upstream authentication -------------------------------------------------------


class Tokens:
    """A realm that hands out `t1`, `t2`, ... and a registry that accepts only `accepted`."""

    def __init__(self, upstream: HTTPServer, accepted: str) -> None:
        self.issued = 0
        self.accepted = accepted
        upstream.expect_request("/token").respond_with_handler(self.token)
        upstream.expect_request("/v2/acme/tool/manifests/1").respond_with_handler(self.manifest)

    def token(self, _: WerkzeugRequest) -> WerkzeugResponse:
        self.issued += 1
        body = json.dumps({"token": f"t{self.issued}", "expires_in": 300})
        return WerkzeugResponse(body, content_type="application/json")

    def manifest(self, asked: WerkzeugRequest) -> WerkzeugResponse:
        if asked.headers.get("Authorization") == f"Bearer {self.accepted}":
            return WerkzeugResponse(MANIFEST)
        return WerkzeugResponse(
            "{}", status=401, headers={"WWW-Authenticate": 'Bearer realm="http://a/t"'}
        )


def test_server_credentials_replace_the_clients_login(httpserver: HTTPServer) -> None:
    Tokens(httpserver, accepted="t1")
    response = serve_registry(
        request("GET", "/v2/tool/manifests/1", headers=[("Authorization", "Basic client")]),
        with_server_credentials(httpserver),
    )
    assert body_of(response) == MANIFEST
    (manifest,) = [r for r, _ in httpserver.log if r.path.startswith("/v2/")]
    assert manifest.headers["Authorization"] == "Bearer t1"


def test_a_token_the_upstream_no_longer_accepts_is_replaced_once(httpserver: HTTPServer) -> None:
    tokens = Tokens(httpserver, accepted="t1")
    settings = with_server_credentials(httpserver)
    serve_registry(request("GET", "/v2/tool/manifests/1"), settings)
    tokens.accepted = "t2"
    response = serve_registry(request("GET", "/v2/tool/manifests/1"), settings)
    assert body_of(response) == MANIFEST
    assert [(r.path, r.headers.get("Authorization")) for r, _ in httpserver.log][2:] == [
        ("/v2/acme/tool/manifests/1", "Bearer t1"),
        ("/token", "Basic " + "Y3JldjpzM2NyZXQ="),
        ("/v2/acme/tool/manifests/1", "Bearer t2"),
    ]


def test_a_refused_fresh_token_is_not_retried_and_shows_no_challenge(
    httpserver: HTTPServer,
) -> None:
    Tokens(httpserver, accepted="none")
    response = serve_registry(
        request("GET", "/v2/tool/manifests/1"), with_server_credentials(httpserver)
    )
    assert response.status == 401
    # The client has no token to get: crev authenticates upstream on its own.
    assert "WWW-Authenticate" not in response.headers
    assert [r.path for r, _ in httpserver.log] == [
        "/token",
        "/v2/acme/tool/manifests/1",
        "/token",
        "/v2/acme/tool/manifests/1",
    ]


def test_a_static_token_is_never_replaced(httpserver: HTTPServer) -> None:
    Tokens(httpserver, accepted="none")
    response = serve_registry(
        request("GET", "/v2/tool/manifests/1"), acme(httpserver, upstream_token="ghp_static")
    )
    assert response.status == 401
    assert [(r.path, r.headers.get("Authorization")) for r, _ in httpserver.log] == [
        ("/v2/acme/tool/manifests/1", "Bearer ghp_static")
    ]


def test_a_request_with_a_body_is_sent_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json({"token": "t1", "expires_in": 300})
    httpserver.expect_request("/v2/acme/tool/manifests/1", method="PUT").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": 'Bearer realm="http://a/t"'}
    )
    response = serve_registry(
        request("PUT", "/v2/tool/manifests/1", body=MANIFEST),
        with_server_credentials(httpserver, allow_push="1"),
    )
    assert response.status == 401
    assert [r.method for r, _ in httpserver.log if r.path.startswith("/v2/")] == ["PUT"]


def test_a_public_route_answers_its_base_itself(httpserver: HTTPServer) -> None:
    response = serve_registry(request("GET", "/v2/"), acme(httpserver, public="1"))
    assert (response.status, json_of(response)) == (200, {})
    assert "WWW-Authenticate" not in response.headers
    assert response.upstream_status is None
    assert httpserver.log == []


def test_a_public_read_by_digest_may_be_kept_at_the_edge(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    httpserver.expect_request(f"/v2/acme/tool/manifests/{DIGEST}").respond_with_data(
        MANIFEST, headers={"Cache-Control": "private", "CDN-Cache-Control": "max-age=9"}
    )
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(MANIFEST)
    settings = acme(httpserver, public="1")
    by_digest = serve_registry(request("GET", f"/v2/tool/manifests/{DIGEST}"), settings)
    assert by_digest.headers.get_all("Cache-Control") == [
        "public, max-age=31536000, s-maxage=31536000, immutable"
    ]
    assert "CDN-Cache-Control" not in by_digest.headers
    by_tag = serve_registry(request("GET", "/v2/tool/manifests/1"), settings)
    assert by_tag.headers.get("Cache-Control") == "no-store"
    # With the client's own login, the answer is the client's: no edge policy is set.
    logged_in = serve_registry(
        request("GET", "/v2/tool/manifests/1", headers=[("Authorization", "Bearer mine")]),
        settings,
    )
    assert "Cache-Control" not in logged_in.headers


# --- a route with a fallback --------------------------------------------------------------------


def test_a_fallback_refusal_the_tag_list_leaves_out_gives_its_connection_back(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = HTTPServer(host="127.0.0.1", port=0)
    fallback.start()
    try:
        httpserver.expect_request("/v2/").respond_with_data("{}")
        fallback.expect_request("/v2/").respond_with_data("{}")
        httpserver.expect_request("/v2/new/tool/tags/list").respond_with_json(
            {"name": "new/tool", "tags": ["2"]}
        )
        # A refusal crev does not read (not a small JSON error), and leaves out of the union.
        fallback.expect_request("/v2/old/tool/tags/list").respond_with_data(
            "private", status=401, content_type="text/plain"
        )
        answers: list[UpstreamResponse] = []
        made = UpstreamResponse.__init__

        def recorded(self: UpstreamResponse, *args: Any) -> None:
            made(self, *args)
            answers.append(self)

        monkeypatch.setattr(UpstreamResponse, "__init__", recorded)
        settings = settings_for(
            httpserver,
            repo_prefix="new",
            public="1",
            fallback_registry_host=f"127.0.0.1:{fallback.port}",
            fallback_registry_scheme="http",
            fallback_repo_prefix="old",
        )
        response = serve_registry(request("GET", "/v2/tool/tags/list"), settings)
        assert json_of(response)["tags"] == ["2"]
        # An answer left open holds its pooled connection for good.
        assert [answer.status for answer in answers if not answer._response.is_closed] == []
    finally:
        fallback.clear()
        fallback.stop()


def test_a_name_too_long_for_the_fallbacks_namespace_is_answered_by_the_primary_alone(
    httpserver: HTTPServer,
) -> None:
    name = "x" * 248
    httpserver.expect_request("/v2/").respond_with_data("{}")
    httpserver.expect_request(f"/v2/acme/{name}/tags/list").respond_with_json(
        {"name": f"acme/{name}", "tags": ["1"]}
    )
    settings = acme(
        httpserver,
        public="1",
        fallback_registry_host="registry.example",
        fallback_repo_prefix="a-much-longer-old-namespace",
    )
    response = serve_registry(request("GET", f"/v2/{name}/tags/list"), settings)
    assert (response.status, json_of(response)["tags"]) == (200, ["1"])
