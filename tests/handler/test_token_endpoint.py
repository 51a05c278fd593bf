"""The token endpoint against a stand-in upstream and realm (pytest-httpserver)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rig.crev_process import serving_acme

TOKEN = {"token": "t0k3n", "access_token": "t0k3n", "expires_in": 300}


@pytest.fixture
def crev(start_crev, httpserver: HTTPServer):
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'},
    )
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    return start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}", registry_scheme="http", repo_prefix="acme"
    )


def realm_requests(httpserver: HTTPServer) -> list:
    return [request for request, _ in httpserver.log if request.path == "/token"]


def test_get_maps_every_scope_under_the_prefix(crev, httpserver: HTTPServer) -> None:
    response = httpx.get(
        f"{crev.url}/api/token",
        params=[
            ("service", "reg"),
            ("scope", "repository:tool:pull"),
            ("scope", "repository:team/x:pull,push repository(plugin):y:pull"),
            ("scope", "registry:catalog:*"),
            ("account", "alice"),
            ("offline_token", "true"),
            ("client_id", "docker"),
        ],
        headers={"Authorization": "Basic YWxpY2U6d29uZGVybGFuZA=="},
    )
    assert response.status_code == 200
    assert response.json() == TOKEN
    (request,) = realm_requests(httpserver)
    assert parse_qsl(request.query_string.decode()) == [
        ("service", "reg"),
        ("account", "alice"),
        ("offline_token", "true"),
        ("client_id", "docker"),
        ("scope", "repository:acme/tool:pull"),
        ("scope", "repository:acme/team/x:pull,push"),
        ("scope", "repository(plugin):acme/y:pull"),
    ]
    assert request.headers["Authorization"] == "Basic YWxpY2U6d29uZGVybGFuZA=="


def test_realm_is_discovered_once_and_reused(crev, httpserver: HTTPServer) -> None:
    # Three repositories: the same anonymous request again is answered from memory (below).
    for name in ("tool", "other", "third"):
        assert httpx.get(f"{crev.url}/api/token?scope=repository:{name}:pull").status_code == 200
    discoveries = [request for request, _ in httpserver.log if request.path == "/v2/"]
    assert len(discoveries) == 1
    assert len(realm_requests(httpserver)) == 3


def test_realm_learned_from_a_proxied_challenge_needs_no_discovery(
    crev, httpserver: HTTPServer
) -> None:
    assert httpx.get(f"{crev.url}/v2/").status_code == 401
    assert httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull").status_code == 200
    assert [request.path for request, _ in httpserver.log] == ["/v2/", "/token"]


def test_post_maps_form_scopes_and_passes_refresh_token(crev, httpserver: HTTPServer) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "r3fr3sh",
        "service": "reg",
        "client_id": "containerd",
        "scope": "repository:tool:pull repository:other:pull,push registry:catalog:*",
    }
    response = httpx.post(f"{crev.url}/api/token", data=form)
    assert response.status_code == 200
    (request,) = realm_requests(httpserver)
    assert request.method == "POST"
    assert parse_qs(request.get_data(as_text=True)) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["r3fr3sh"],
        "service": ["reg"],
        "client_id": ["containerd"],
        "scope": ["repository:acme/tool:pull repository:acme/other:pull,push"],
    }


def test_realm_errors_pass_back(crev, httpserver: HTTPServer) -> None:
    httpserver.clear_all_handlers()
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'}
    )
    denied = {"errors": [{"code": "DENIED", "message": "bad credentials"}]}
    httpserver.expect_request("/token").respond_with_json(denied, status=401)
    response = httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull")
    assert response.status_code == 401
    assert response.json() == denied
    assert response.headers["content-type"] == "application/json"


def test_client_cannot_choose_the_realm(crev, httpserver: HTTPServer) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        response = httpx.get(
            f"{crev.url}/api/token",
            params={"realm": other.url_for("/steal"), "scope": "repository:tool:pull"},
            headers={"Authorization": "Basic c2VjcmV0OnNlY3JldA=="},
        )
        assert response.status_code == 200
        assert other.log == []
    finally:
        other.stop()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("scope", "repository:Tool:pull")], "invalid scope"),
        ([("scope", "nonsense")], "invalid scope"),
        ([("service", "a"), ("service", "b")], "more than one service"),
        ([("scope", "repository:x:pull")] * 65, "more than 64 scopes"),
    ],
)
def test_bad_token_requests_are_refused(crev, httpserver: HTTPServer, params, message) -> None:
    response = httpx.get(f"{crev.url}/api/token", params=params)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]
    assert realm_requests(httpserver) == []


def test_post_must_be_a_form(crev, httpserver: HTTPServer) -> None:
    response = httpx.post(f"{crev.url}/api/token", content=json.dumps({"scope": "x"}))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_other_methods_are_refused(crev) -> None:
    response = httpx.delete(f"{crev.url}/api/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_configured_realm_skips_discovery(start_crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json(TOKEN)
    crev = start_crev(
        registry_host=f"127.0.0.1:{httpserver.port}",
        registry_scheme="http",
        token_realm=httpserver.url_for("/token"),
    )
    assert httpx.get(f"{crev.url}/api/token?scope=repository:x:pull").status_code == 200
    assert [request.path for request, _ in httpserver.log] == ["/token"]


def test_a_token_the_realm_compresses_reaches_the_client_readable(
    start_crev, httpserver: HTTPServer
) -> None:
    # Go's HTTP client (docker, skopeo) sends `Accept-Encoding: gzip`, which crev passes on.
    compressed: list[bool] = []

    def gzip_if_asked(request: Request) -> Response:
        body = json.dumps(TOKEN).encode()
        compressed.append("gzip" in request.headers.get("Accept-Encoding", ""))
        if compressed[-1]:
            return Response(gzip.compress(body), headers={"Content-Encoding": "gzip"})
        return Response(body)

    realm = httpserver.url_for("/token")
    httpserver.expect_request("/token").respond_with_handler(gzip_if_asked)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        token_realm=realm,
    )
    response = httpx.get(
        f"{crev.url}/api/token?scope=repository:tool:pull", headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert json.loads(response.content) == TOKEN
    # The realm was asked for gzip, as the client asked crev, and compressed its answer: the
    # body above is one crev decoded, not one that came plain.
    assert compressed == [True]


def anonymous_token(crev, *scopes: str, **kwargs) -> httpx.Response:
    params = [("service", "reg"), *(("scope", scope) for scope in scopes)]
    response = httpx.get(f"{crev.url}/api/token", params=params, **kwargs)
    assert response.status_code == 200
    return response


def test_the_same_anonymous_request_is_answered_from_memory(crev, httpserver: HTTPServer) -> None:
    first = anonymous_token(crev, "repository:tool:pull", "repository:other:pull")
    assert first.json() == TOKEN
    # The same scopes in another order ask the realm the same.
    again = anonymous_token(crev, "repository:other:pull", "repository:tool:pull")
    assert len(realm_requests(httpserver)) == 1
    document = again.json()
    assert document["token"] == document["access_token"] == TOKEN["token"]
    assert 0 < document["expires_in"] <= TOKEN["expires_in"]
    issued_at = dt.datetime.fromisoformat(document["issued_at"])
    assert abs(issued_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert again.headers["content-type"] == "application/json"
    assert again.headers["cache-control"] == "no-store"
    assert int(again.headers["content-length"]) == len(again.content)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(
            lambda crev: anonymous_token(
                crev, "repository:tool:pull", headers={"Authorization": "Basic YTpi"}
            ),
            id="authorization",
        ),
        pytest.param(
            lambda crev: httpx.post(
                f"{crev.url}/api/token",
                data={
                    "grant_type": "password",
                    "username": "a",
                    "password": "b",
                    "service": "reg",
                    "scope": "repository:tool:pull",
                },
            ),
            id="password-form",
        ),
        pytest.param(
            lambda crev: httpx.post(
                f"{crev.url}/api/token",
                data={"service": "reg", "scope": "repository:tool:pull"},
            ),
            id="post",
        ),
        pytest.param(
            lambda crev: httpx.get(
                f"{crev.url}/api/token",
                params={"service": "reg", "scope": "repository:tool:pull", "account": "a"},
            ),
            id="account",
        ),
        pytest.param(lambda crev: anonymous_token(crev, "repository:tool:pull,push"), id="push"),
        pytest.param(lambda crev: anonymous_token(crev, "repository:other:pull"), id="other"),
    ],
)
def test_requests_other_than_the_kept_anonymous_one_ask_the_realm(
    crev, httpserver: HTTPServer, second
) -> None:
    anonymous_token(crev, "repository:tool:pull")
    assert second(crev).status_code == 200
    assert len(realm_requests(httpserver)) == 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"token": "t0k3n"}, id="no-lifetime"),
        pytest.param({"token": "t0k3n", "expires_in": 60}, id="spec-default"),
        pytest.param({"token": "t0k3n", "expires_in": "300"}, id="lifetime-not-a-number"),
        pytest.param({"token": "t0k3n", "expires_in": 300, "refresh_token": "r"}, id="refresh"),
        pytest.param({"expires_in": 300}, id="no-token"),
    ],
)
def test_anonymous_answers_crev_does_not_keep(start_crev, httpserver: HTTPServer, answer) -> None:
    httpserver.expect_request("/token").respond_with_json(answer)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"), token_realm=httpserver.url_for("/token")
    )
    for _ in range(2):
        assert anonymous_token(crev, "repository:tool:pull").json() == answer
    assert len(realm_requests(httpserver)) == 2


def test_a_refused_anonymous_request_is_asked_again(start_crev, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json({"errors": []}, status=401)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"), token_realm=httpserver.url_for("/token")
    )
    for _ in range(2):
        assert httpx.get(f"{crev.url}/api/token?scope=repository:tool:pull").status_code == 401
    assert len(realm_requests(httpserver)) == 2
