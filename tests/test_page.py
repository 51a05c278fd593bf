"""The page for people, against a stand-in upstream."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpserver import HTTPServer

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def crev(start_crev, httpserver: HTTPServer):
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'}
    )
    return start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", repo_prefix="acme"
    )


def test_home_page_lists_routes_and_a_pull_line(crev, httpserver: HTTPServer) -> None:
    response = httpx.get(f"{crev.url}/", headers={**HTML, "X-Forwarded-Host": "acme.dev"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<pre>docker pull acme.dev/NAME:TAG</pre>" in response.text
    assert f"<code>127.0.0.1:{httpserver.port}/acme/NAME</code>" in response.text
    assert httpserver.log == []


def test_repository_page_lists_tags_fetched_anonymously(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/v2/acme/tool/tags/list", headers={"Authorization": "Bearer anon"}
    ).respond_with_json({"name": "acme/tool", "tags": ["1.0", "latest", "<script>"]})
    httpserver.expect_request("/v2/acme/tool/tags/list").respond_with_data(
        "{}",
        status=401,
        headers={
            "WWW-Authenticate": f'Bearer realm="{httpserver.url_for("/token")}",service="reg"'
        },
    )
    httpserver.expect_request("/token").respond_with_json({"token": "anon"})
    response = httpx.get(f"{crev.url}/tool", headers={**HTML, "Host": "acme.dev"})
    assert response.status_code == 200
    assert "<pre>docker pull acme.dev/tool:latest</pre>" in response.text
    assert "<code>docker pull acme.dev/tool:1.0</code>" in response.text
    assert "Tags (3)" in response.text
    assert "<script>" not in response.text and "&lt;script&gt;" in response.text
    (token_request,) = [r for r, _ in httpserver.log if r.path == "/token"]
    assert token_request.args.getlist("scope") == ["repository:acme/tool:pull"]
    assert "Authorization" not in token_request.headers


def test_private_repository_says_so(crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/secret/tags/list").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{httpserver.url_for("/token")}"'},
    )
    httpserver.expect_request("/token").respond_with_json({"token": "anon"})
    response = httpx.get(f"{crev.url}/secret", headers=HTML)
    assert response.status_code == 502
    assert "this repository is private" in response.text


def test_invalid_name_is_a_404_page(crev, httpserver: HTTPServer) -> None:
    response = httpx.get(f"{crev.url}/Not..Valid", headers=HTML)
    assert response.status_code == 404
    assert "<h1>Not found</h1>" in response.text
    assert httpserver.log == []


def test_registry_clients_never_get_the_page(crev, httpserver: HTTPServer) -> None:
    for accept in ("application/json", "application/vnd.oci.image.manifest.v1+json", "*/*"):
        response = httpx.get(f"{crev.url}/tool", headers={"Accept": accept})
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    response = httpx.get(f"{crev.url}/v2/_catalog", headers=HTML)
    assert response.headers["content-type"] == "application/json"


def test_browser_redirect_replaces_the_page(start_crev, httpserver: HTTPServer) -> None:
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        browser_redirect="https://github.com/acme",
    )
    for path in ("/", "/tool"):
        response = httpx.get(f"{crev.url}{path}", headers=HTML)
        assert response.status_code == 302
        assert response.headers["location"] == "https://github.com/acme"
    assert httpserver.log == []
