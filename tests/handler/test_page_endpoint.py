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


def test_home_page_shows_docker_hub_s_official_images_under_library(start_crev) -> None:
    crev = start_crev(registry_host="docker.io")
    response = httpx.get(f"{crev.url}/", headers={**HTML, "X-Forwarded-Host": "acme.dev"})
    assert (
        "<td><code>registry-1.docker.io/library/NAME</code> for one-component names "
        "(official images), <code>registry-1.docker.io/NAME</code> for the rest</td>"
    ) in response.text


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
    # The page's own script alone: the tag is text.
    assert response.text.count("<script>") == 1 and "&lt;script&gt;" in response.text
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
    assert response.status_code == 403
    assert "This repository is private. Log in to pull it." in response.text
    assert "docker pull 127.0.0.1" in response.text


def test_a_realm_that_grants_no_anonymous_token_means_asking_without_one(
    crev, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/v2/acme/secret/tags/list").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{httpserver.url_for("/token")}"'},
    )
    httpserver.expect_request("/token").respond_with_data("{}", status=401)
    response = httpx.get(f"{crev.url}/secret", headers=HTML)
    assert response.status_code == 403
    asked = [r for r, _ in httpserver.log if r.path == "/v2/acme/secret/tags/list"]
    # Asked once anonymously, and once more after the realm refused a token: still without an
    # `Authorization`, never with an empty one.
    assert len(asked) == 2
    assert all("Authorization" not in request.headers for request in asked)


def test_a_missing_repository_is_a_404_page(crev, httpserver: HTTPServer) -> None:
    anonymous_realm_grants_nothing(httpserver)
    httpserver.expect_request("/v2/acme/nothing/tags/list").respond_with_json(
        {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]},
        status=404,
    )
    response = httpx.get(f"{crev.url}/nothing", headers=HTML)
    assert response.status_code == 404
    assert "There is no such repository." in response.text
    assert "docker pull" not in response.text


def test_an_unreachable_registry_is_a_502_page(start_crev) -> None:
    crev = start_crev(registry_host="127.0.0.1:9", registry_scheme="http", upstream_timeout="2")
    response = httpx.get(f"{crev.url}/tool", headers=HTML)
    assert response.status_code == 502
    assert "the registry could not be asked" in response.text


def anonymous_realm_grants_nothing(httpserver: HTTPServer) -> None:
    """The realm refuses crev an anonymous token (a realm that fails, with a 5xx, is the
    upstream failing), so the tag list is asked without one."""
    httpserver.expect_request("/token").respond_with_data("{}", status=401)


def paginated(httpserver: HTTPServer, pages: int, per_page: int, next_host: str = "") -> None:
    """A tag list in `pages` pages, each linking the next (`next_host` makes a link absolute)."""
    anonymous_realm_grants_nothing(httpserver)
    for page in range(pages):
        tags = [f"1.{page * per_page + i}" for i in range(per_page)]
        headers = {}
        if page + 1 < pages:
            target = f"{next_host}/v2/acme/tool/tags/list?n={per_page}&last={tags[-1]}"
            headers["Link"] = f'<{target}>; rel="next"'
        query = "" if page == 0 else {"n": str(per_page), "last": f"1.{page * per_page - 1}"}
        httpserver.expect_request("/v2/acme/tool/tags/list", query_string=query).respond_with_json(
            {"name": "acme/tool", "tags": tags}, headers=headers
        )


def test_the_page_follows_tag_pagination_and_sorts_versions_newest_first(
    crev, httpserver: HTTPServer
) -> None:
    paginated(httpserver, pages=3, per_page=4)
    response = httpx.get(f"{crev.url}/tool", headers={**HTML, "Host": "acme.dev"})
    assert response.status_code == 200
    assert "Tags (12)" in response.text
    order = [f"acme.dev/tool:1.{n}" for n in (11, 10, 9, 8, 2, 1, 0)]
    positions = [response.text.index(f"<code>docker pull {tag}</code>") for tag in order]
    assert positions == sorted(positions)
    assert "<pre>docker pull acme.dev/tool:1.11</pre>" in response.text


def test_the_page_stops_after_its_bound_and_says_so(crev, httpserver: HTTPServer) -> None:
    from crev.tag_list import MAX_TAG_LIST_PAGES

    paginated(httpserver, pages=MAX_TAG_LIST_PAGES + 3, per_page=1)
    response = httpx.get(f"{crev.url}/tool", headers=HTML)
    assert f"Tags ({MAX_TAG_LIST_PAGES}+)" in response.text
    assert "more tags than this page reads" in response.text
    asked = [r for r, _ in httpserver.log if r.path == "/v2/acme/tool/tags/list"]
    assert len(asked) == MAX_TAG_LIST_PAGES


def test_a_next_page_on_another_host_is_not_followed(crev, httpserver: HTTPServer) -> None:
    paginated(httpserver, pages=2, per_page=2, next_host="http://elsewhere.invalid")
    response = httpx.get(f"{crev.url}/tool", headers=HTML)
    assert response.status_code == 200
    assert "Tags (2+)" in response.text
    assert len([r for r, _ in httpserver.log if r.path == "/v2/acme/tool/tags/list"]) == 1


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
    # What `curl https://acme.dev/` gets: where to go instead.
    response = httpx.get(f"{crev.url}/", headers={"Accept": "*/*"})
    assert response.status_code == 404
    assert response.json()["errors"] == [
        {
            "code": "UNSUPPORTED",
            "message": "'/' is a page for browsers (it answers Accept: text/html); "
            "the registry API is at /v2/",
        }
    ]
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


# What the page's signatures, and cosign itself, rely on: crev passes referrers and cosign's tags
# on untouched.
SUBJECT = "sha256:" + "5" * 64
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


def test_referrers_with_an_artifact_type_filter_pass_through_untouched(
    crev, httpserver: HTTPServer
) -> None:
    index = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
        b'"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"digest":"sha256:' + b"6" * 64 + b'","size":3,'
        b'"artifactType":"' + SIGNATURE_TYPE.encode() + b'"}]}'
    )
    query = "artifactType=application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson"
    httpserver.expect_request(
        f"/v2/acme/tool/referrers/{SUBJECT}", query_string=query
    ).respond_with_data(
        index,
        content_type="application/vnd.oci.image.index.v1+json",
        headers={"OCI-Filters-Applied": "artifactType"},
    )
    response = httpx.get(f"{crev.url}/v2/tool/referrers/{SUBJECT}?{query}")
    assert response.status_code == 200
    assert response.content == index
    assert response.headers["content-type"] == "application/vnd.oci.image.index.v1+json"
    assert response.headers["oci-filters-applied"] == "artifactType"
    (asked,) = [r for r, _ in httpserver.log if "/referrers/" in r.path]
    assert asked.query_string.decode() == query


def test_a_referrers_404_reaches_the_client_as_a_404(crev, httpserver: HTTPServer) -> None:
    """cosign falls back to the `.sig` tag on a 404 alone."""
    httpserver.expect_request(f"/v2/acme/tool/referrers/{SUBJECT}").respond_with_data(
        "404 page not found\n", status=404, content_type="text/plain"
    )
    response = httpx.get(
        f"{crev.url}/v2/tool/referrers/{SUBJECT}", params={"artifactType": SIGNATURE_TYPE}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("suffix", ["sig", "att"])
def test_cosign_s_tags_pass_through_untouched(crev, httpserver: HTTPServer, suffix: str) -> None:
    tag = f"sha256-{'5' * 64}.{suffix}"
    manifest = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{},"layers":[]}'
    )
    httpserver.expect_request(f"/v2/acme/tool/manifests/{tag}").respond_with_data(
        manifest, content_type="application/vnd.oci.image.manifest.v1+json"
    )
    response = httpx.get(
        f"{crev.url}/v2/tool/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert response.status_code == 200
    assert response.content == manifest
