"""The page for people (crev/page.py) called as a function, against a stand-in upstream: only
for browsers, a home page of the routes, and a repository's tags read as an anonymous client
(or with crev's own credentials) would read them."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.config import Settings
from crev.messages import Response
from crev.page import MAX_TAGS_SHOWN, serve_page
from crev.tag_list import MAX_TAG_LIST_PAGES
from rig.images import BuiltManifest, build_small_image
from tests.support.refusals import refused
from tests.support.service_calls import body_of, request, settings_for

BROWSER = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
TAGS = "/v2/acme/tool/tags/list"
MANIFESTS = "/v2/acme/tool/manifests"


def page(path: str, settings: Settings, method: str = "GET") -> tuple[Response, str]:
    response = serve_page(request(method, path, headers=[BROWSER]), settings)
    return response, body_of(response).decode()


def acme(upstream: HTTPServer, **variables: str) -> Settings:
    return settings_for(upstream, repo_prefix="acme", **variables)


def tag_requests(upstream: HTTPServer) -> list[WerkzeugRequest]:
    return [request for request, _ in upstream.log if request.path == TAGS]


def test_registry_clients_get_a_registry_error(httpserver: HTTPServer) -> None:
    with refused() as refusal:
        serve_page(
            request("GET", "/tool", headers=[("Accept", "application/json")]), acme(httpserver)
        )
    assert (refusal.status, refusal.code) == (404, "UNSUPPORTED")
    assert refusal.message == (
        "'/tool' is a page for browsers (it answers Accept: text/html); the registry API is at /v2/"
    )
    with refused() as refusal:
        serve_page(request("POST", "/tool", headers=[BROWSER]), acme(httpserver))
    assert refusal.status == 405
    assert refusal.headers == [("Allow", "GET, HEAD")]
    assert httpserver.log == []


def test_the_page_is_html_that_runs_its_own_script_alone(httpserver: HTTPServer) -> None:
    response, text = page("/", acme(httpserver))
    assert response.status == 200
    assert text.startswith("<!doctype html>")
    assert response.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    # One inline script, allowed by its hash, and nothing fetched.
    (script,) = re.findall(r"<script>(.*?)</script>", text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert response.headers.get("Content-Security-Policy") == (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    )
    assert "<script src" not in text
    assert response.headers.get("Content-Length") == str(len(text.encode()))


def test_the_home_page_lists_every_route(httpserver: HTTPServer) -> None:
    upstream = f"http://127.0.0.1:{httpserver.port}"
    settings = Settings.from_env(
        {
            "CREV_ROUTES": f"tools/={upstream}/acme/tools;credentials=TOOLS, ={upstream}",
            "CREV_TOOLS_TOKEN": "ghp_secret",
        }
    )
    _, text = page("/", settings)
    served = f"127.0.0.1:{httpserver.port}"
    assert (
        f"<td><code>acme.dev/tools/NAME</code></td><td><code>{served}/acme/tools/NAME</code></td>"
        "<td>crev's credentials</td>"
    ) in text
    assert (
        f"<td><code>acme.dev/NAME</code></td><td><code>{served}/NAME</code></td>"
        "<td>public, or your credentials</td>"
    ) in text
    assert "<pre>docker pull acme.dev/NAME:TAG</pre>" in text
    assert "ghp_secret" not in text
    assert httpserver.log == []


def test_the_home_page_says_how_to_pull_with_each_client(httpserver: HTTPServer) -> None:
    upstream = f"http://127.0.0.1:{httpserver.port}"
    settings = Settings.from_env({"CREV_ROUTES": f"tools/={upstream}/acme/tools"})
    _, text = page("/", settings)
    for line in [
        "docker pull acme.dev/tools/NAME:TAG",
        "podman pull acme.dev/tools/NAME:TAG",
        "ctr image pull acme.dev/tools/NAME:TAG",
        'server = "https://acme.dev"\n\n[host."https://acme.dev"]\n'
        '  capabilities = ["pull", "resolve"]',
        "helm install RELEASE oci://acme.dev/tools/NAME --version VERSION",
        "cosign verify --key cosign.pub acme.dev/tools/NAME:TAG",
    ]:
        assert f"<div class=pull><pre>{html.escape(line)}</pre><button" in text
    assert "<code>/etc/containerd/certs.d/acme.dev/hosts.toml</code>" in text
    assert httpserver.log == []


def test_a_browser_redirect_replaces_the_page(httpserver: HTTPServer) -> None:
    response, text = page("/tool", acme(httpserver, browser_redirect="https://acme.example/"))
    assert response.status == 302
    assert response.headers.get("Location") == "https://acme.example/"
    assert text == ""


def test_a_repository_lists_its_tags_newest_first(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS).respond_with_json(
        {"name": "acme/tool", "tags": ["1.2", "1.10", "latest", 7, None]}
    )
    response, text = page("/tool", acme(httpserver))
    assert response.status == 200
    assert "<h2>Tags (3)</h2>" in text
    assert text.index("<code>1.10</code>") < text.index("<code>1.2</code>")
    assert "<p class=lead>Served from <code>127.0.0.1:" in text
    assert "<code>docker pull acme.dev/tool:latest</code>" in text
    # Asked anonymously: the upstream wanted no token.
    (asked,) = tag_requests(httpserver)
    assert "Authorization" not in asked.headers


def test_a_long_tag_list_shows_the_newest(httpserver: HTTPServer) -> None:
    tags = [f"1.{n}" for n in range(MAX_TAGS_SHOWN + 5)]
    httpserver.expect_request(TAGS).respond_with_json({"tags": tags})
    _, text = page("/tool", acme(httpserver))
    assert f"<h2>Tags ({len(tags)})</h2>" in text
    assert "and 5 more, not shown." in text
    assert f"<code>1.{MAX_TAGS_SHOWN + 4}</code>" in text
    assert "<code>1.0</code>" not in text


def test_a_repository_without_tags_says_so(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS).respond_with_json({"name": "acme/tool", "tags": None})
    response, text = page("/tool", acme(httpserver))
    assert response.status == 200
    assert "No tags yet." in text


@pytest.mark.parametrize(
    ("upstream_status", "status", "words"),
    [
        (401, 403, "This repository is private. Log in to pull it."),
        (403, 403, "This repository is private. Log in to pull it."),
        (404, 404, "There is no such repository."),
        (500, 502, "The registry answered 500."),
    ],
)
def test_a_refused_tag_list_is_a_page_that_says_why(
    httpserver: HTTPServer, upstream_status: int, status: int, words: str
) -> None:
    httpserver.expect_request(TAGS).respond_with_json({"errors": []}, status=upstream_status)
    response, text = page("/tool", acme(httpserver))
    assert response.status == status
    assert f"<p class=notice>{words}</p>" in text
    # Where there is no repository there is nothing to pull.
    assert ("docker pull" in text) is (status != 404)


def test_a_tag_list_that_is_no_json_is_a_502_page(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS).respond_with_data("<html>")
    response, text = page("/tool", acme(httpserver))
    assert response.status == 502
    assert "the registry could not be asked: upstream tag list is not JSON" in text


# The last is a name, but under the route's namespace upstream it is longer than a name may be.
@pytest.mark.parametrize("path", ["/Tool", "/a//b", "/other/x", "/a/" + "x" * 252])
def test_a_path_that_names_no_repository_here_is_a_404_page(
    httpserver: HTTPServer, path: str
) -> None:
    upstream = f"http://127.0.0.1:{httpserver.port}"
    settings = Settings.from_env({"CREV_ROUTES": f"a/={upstream}/acme"})
    response, text = page(path, settings)
    assert response.status == 404
    assert "<h1>Not found</h1>" in text
    assert httpserver.log == []


def test_an_anonymous_token_is_asked_only_when_the_upstream_wants_one(
    httpserver: HTTPServer,
) -> None:
    realm = httpserver.url_for("/token")
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'}
    httpserver.expect_request("/token").respond_with_json({"token": "anon", "expires_in": 300})
    httpserver.expect_request(TAGS, headers={"Authorization": "Bearer anon"}).respond_with_json(
        {"tags": ["1"]}
    )
    httpserver.expect_request(TAGS).respond_with_json({}, status=401, headers=challenge)
    httpserver.expect_request("/v2/").respond_with_json({}, status=401, headers=challenge)
    response, text = page("/tool", acme(httpserver))
    assert response.status == 200
    assert "<code>1</code>" in text
    log = [(r.path, r.headers.get("Authorization")) for r, _ in httpserver.log]
    assert [entry for entry in log if entry[0] == TAGS][-1] == (TAGS, "Bearer anon")
    # The tag's details are asked with the same token.
    assert (f"{MANIFESTS}/1", "Bearer anon") in log
    # One anonymous token, and never an empty Authorization on the way to it.
    assert [authorization for path, authorization in log if path == "/token"] == [None]
    assert all(authorization != "" for _, authorization in log)


def test_server_credentials_are_used_from_the_first_request(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        TAGS, headers={"Authorization": "Bearer ghp_static"}
    ).respond_with_json({"tags": ["1"]})
    response, _ = page("/tool", acme(httpserver, upstream_token="ghp_static"))
    assert response.status == 200
    # No discovery and no token request: the tag list first, then the tag's details.
    asked = [(r.path, r.headers.get("Authorization")) for r, _ in httpserver.log]
    assert asked[0] == (TAGS, "Bearer ghp_static")
    assert {path for path, _ in asked} == {TAGS, f"{MANIFESTS}/1"}
    assert all(authorization == "Bearer ghp_static" for _, authorization in asked)


def test_pages_are_followed_on_the_same_list_only(httpserver: HTTPServer) -> None:
    httpserver.expect_request(TAGS, query_string="last=1").respond_with_json(
        {"tags": ["2"]},
        headers={"Link": '<http://elsewhere.example/v2/acme/tool/tags/list?last=2>; rel="next"'},
    )
    httpserver.expect_request(TAGS).respond_with_json(
        {"tags": ["1"]}, headers={"Link": f'<{TAGS}?last=1>; rel="next"'}
    )
    _, text = page("/tool", acme(httpserver))
    # A link elsewhere is not followed: the count says the list goes on.
    assert "<h2>Tags (2+)</h2>" in text
    assert len(tag_requests(httpserver)) == 2


def test_pages_are_followed_up_to_a_bound(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_json({})
    httpserver.expect_request(TAGS).respond_with_json(
        {"tags": ["1"]}, headers={"Link": f'<{TAGS}?n=1>; rel="next"'}
    )
    _, text = page("/tool", acme(httpserver))
    assert len(tag_requests(httpserver)) == MAX_TAG_LIST_PAGES
    # An upstream that wants no token is asked so once, not before every page.
    assert [r.path for r, _ in httpserver.log].count("/v2/") == 1
    assert f"({MAX_TAG_LIST_PAGES} pages)" in text
    assert "skopeo list-tags docker://acme.dev/tool" in text


def test_a_name_too_long_for_the_fallbacks_namespace_is_listed_from_the_primary(
    httpserver: HTTPServer,
) -> None:
    name = "x" * 248
    httpserver.expect_request(f"/v2/acme/{name}/tags/list").respond_with_json(
        {"name": f"acme/{name}", "tags": ["1"]}
    )
    settings = acme(
        httpserver,
        public="1",
        fallback_registry_host="registry.example",
        fallback_repo_prefix="a-much-longer-old-namespace",
    )
    response, text = page(f"/{name}", settings)
    assert response.status == 200
    assert "<h2>Tags (1)</h2>" in text
    assert "registry.example" not in text


def serve_image(upstream: HTTPServer, tag: str, built: BuiltManifest, prefix: str = "acme") -> None:
    """An image's manifest (by tag) and its blobs on the stand-in, under `prefix/tool`."""
    manifest = built.manifest
    upstream.expect_request(f"/v2/{prefix}/tool/manifests/{tag}").respond_with_data(
        manifest.data, content_type=manifest.media_type
    )
    for blob in built.blobs:
        upstream.expect_request(f"/v2/{prefix}/tool/blobs/{blob.digest}").respond_with_data(
            blob.data, content_type=blob.media_type
        )


def test_the_first_tags_show_digest_platform_size_date_and_signature(
    httpserver: HTTPServer,
) -> None:
    built = build_small_image("acme/tool:1")
    signature = "sha256-" + built.manifest.digest.removeprefix("sha256:") + ".sig"
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1", signature]})
    serve_image(httpserver, "1", built)
    response, text = page("/tool", acme(httpserver))
    assert response.status == 200
    digest = built.manifest.digest
    size = sum(blob.size for blob in built.blobs[1:])
    assert (
        "<tr><td><code>1</code></td>"
        f'<td><code class=digest title="{digest}">{digest[:19]}…</code></td>'
        f"<td>linux/amd64</td><td>{size / 1000:.3g} kB</td>"
        '<td><time datetime="2024-01-01T00:00:00+00:00">2024-01-01</time></td>'
        "<td><span class=signed>signed</span></td></tr>"
    ) in text
    assert "<pre>cosign verify --key cosign.pub acme.dev/tool:1</pre>" in text
    # Each pull line has its copy button, shown by the script; the text stays selectable.
    assert (
        "<code>docker pull acme.dev/tool:1</code> <button type=button class=copy hidden>"
        "Copy</button>"
    ) in text
    assert "user-select: all" in text
    assert "<h2>Tags (1)</h2>" in text


def test_a_blob_redirected_to_storage_is_fetched_without_crev_s_credentials(
    httpserver: HTTPServer,
) -> None:
    built = build_small_image("acme/tool:1")
    config = built.blobs[0]
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1"]})
    httpserver.expect_request(f"{MANIFESTS}/1").respond_with_data(
        built.manifest.data, content_type=built.manifest.media_type
    )
    # Another origin (`localhost`, where crev asks `127.0.0.1`), as signed storage is.
    storage = f"http://localhost:{httpserver.port}/storage/config?signature=s"
    httpserver.expect_request(f"/v2/acme/tool/blobs/{config.digest}").respond_with_data(
        "", status=307, headers={"Location": storage}
    )
    httpserver.expect_request("/storage/config").respond_with_data(config.data)
    _, text = page("/tool", acme(httpserver, upstream_token="ghp_static"))
    assert '<time datetime="2024-01-01T00:00:00+00:00">2024-01-01</time>' in text
    asked = {r.path: r.headers.get("Authorization") for r, _ in httpserver.log}
    assert asked[f"/v2/acme/tool/blobs/{config.digest}"] == "Bearer ghp_static"
    assert asked["/storage/config"] is None


def test_a_tag_only_the_fallback_has_is_detailed_from_the_fallback(
    httpserver: HTTPServer,
) -> None:
    built = build_small_image("acme/tool:old")
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1"]})
    httpserver.expect_request("/v2/old/tool/tags/list").respond_with_json({"tags": ["0.9"]})
    serve_image(httpserver, "0.9", built, prefix="old")
    httpserver.expect_request(f"{MANIFESTS}/0.9").respond_with_json(
        {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, status=404
    )
    settings = acme(
        httpserver,
        public="1",
        fallback_registry_host=f"127.0.0.1:{httpserver.port}",
        fallback_registry_scheme="http",
        fallback_repo_prefix="old",
    )
    _, text = page("/tool", settings)
    digest = built.manifest.digest
    assert f'<code class=digest title="{digest}">' in text
    # The primary's 404 for 0.9 sent the request on; its own tag 1 it answered itself (500).
    assert "details unavailable: the registry answered 500" in text


def test_a_stalling_upstream_costs_the_page_its_details_not_its_answer(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1"]})

    answered = threading.Event()

    def stall(_: WerkzeugRequest) -> WerkzeugResponse:
        time.sleep(2)
        answered.set()
        return WerkzeugResponse("{}", status=404)

    httpserver.expect_request(f"{MANIFESTS}/1").respond_with_handler(stall)
    started = time.monotonic()
    response, text = page("/tool", acme(httpserver, upstream_timeout="1"))
    assert time.monotonic() - started < 1.8
    assert response.status == 200
    assert "details unavailable: " in text
    assert "<code>docker pull acme.dev/tool:1</code>" in text
    # The stand-in is the next test's too: its late answer must not land in that test's log.
    assert answered.wait(5)
    logged = time.monotonic() + 5
    while f"{MANIFESTS}/1" not in [r.path for r, _ in httpserver.log]:
        assert time.monotonic() < logged
        time.sleep(0.01)


def test_docker_hub_is_asked_for_tags_alone(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Hub counts manifest GETs against the pull limit crev's clients share."""
    monkeypatch.setattr("crev.urls.DOCKER_HUB", f"127.0.0.1:{httpserver.port}")
    httpserver.expect_request(TAGS).respond_with_json({"tags": ["1"]})
    response, text = page("/tool", acme(httpserver))
    assert response.status == 200
    assert "<code>docker pull acme.dev/tool:1</code>" in text
    assert "Docker Hub counts each manifest read against a pull limit" in text
    assert [r.path for r, _ in httpserver.log if r.path != "/v2/"] == [TAGS]
