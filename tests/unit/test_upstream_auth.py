"""The upstream tokens crev fetches itself (crev/upstream/auth.py's methods, under
crev/upstream/__init__.py's `Upstream`), against a stand-in upstream and realm: asked for exactly
the request's scopes with the route's credentials, kept until shortly before they expire, and
never fetched where the upstream wants none."""

from __future__ import annotations

import base64
import inspect
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.config import Settings
from crev.errors import UpstreamError
from crev.messages import Headers
from crev.names import Namespace, RepositoryName
from crev.proxy import serve_registry
from crev.routing import Route
from crev.scope import Scope
from crev.server import PROJECT_ROOT
from crev.token_endpoint import serve_token
from crev.upstream import Upstream
from crev.upstream.auth import Grant, Login, TokenSource, UpstreamAuth
from crev.upstream.connections import Connections, UpstreamRequest
from crev.upstream.realm import Realm
from crev.urls import URL, Origin
from tests.support.refusals import refused
from tests.support.service_calls import request, settings_for, with_server_credentials

TIMEOUT = 5.0
PULL = (Scope.repository(RepositoryName("acme/tool"), "pull"),)
PUSH = (Scope.repository(RepositoryName("acme/tool"), "pull", "push"),)


def server_authorization(route: Route, scopes: tuple[Scope, ...]) -> str | None:
    """The `Authorization` crev sends upstream for a request it authorizes itself."""
    return authorized(Headers(), route, scopes).get("Authorization")


def authorized(headers: Headers, route: Route, scopes: tuple[Scope, ...]) -> Headers:
    """The headers of a request as crev sends it with its own authorization for `scopes`."""
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), headers)
    grant = route.upstream.auth.authorization(route.upstream, scopes)
    return request.with_authorization(grant.authorization).headers


def route_of(upstream: HTTPServer, **variables: str) -> Route:
    return settings_for(upstream, repo_prefix="acme", **variables).routes.default


def with_credentials(upstream: HTTPServer, **variables: str) -> Route:
    return with_server_credentials(upstream, **variables).routes.default


def token_requests(upstream: HTTPServer) -> list[WerkzeugRequest]:
    return [request for request, _ in upstream.log if request.path == "/token"]


def challenge(upstream: HTTPServer) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{upstream.url_for("/token")}",service="reg"'}


def test_a_static_token_is_sent_as_it_is(httpserver: HTTPServer) -> None:
    route = route_of(httpserver, upstream_token="ghp_static")
    assert server_authorization(route, PULL) == "Bearer ghp_static"
    assert httpserver.log == []


def test_credentials_buy_a_token_for_exactly_the_scopes(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json({"token": "t1", "expires_in": 300})
    route = with_credentials(httpserver)
    assert server_authorization(route, PULL) == "Bearer t1"
    (asked,) = token_requests(httpserver)
    assert parse_qsl(asked.query_string.decode()) == [
        ("scope", "repository:acme/tool:pull"),
        ("account", "crev"),
    ]
    assert asked.headers["Authorization"] == "Basic " + base64.b64encode(b"crev:s3cret").decode()


def test_a_token_is_kept_for_its_scopes_and_shared(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/token").respond_with_json({"token": "t1", "expires_in": 300})
    route = with_credentials(httpserver)
    for _ in range(3):
        assert server_authorization(route, PULL) == "Bearer t1"
    assert len(token_requests(httpserver)) == 1
    # Other scopes are another token.
    server_authorization(route, PUSH)
    assert [
        dict(parse_qsl(r.query_string.decode()))["scope"] for r in token_requests(httpserver)
    ] == [
        "repository:acme/tool:pull",
        "repository:acme/tool:pull,push",
    ]


def test_a_token_is_fetched_again_before_it_expires(httpserver: HTTPServer) -> None:
    # A one-second token is kept for half its life, never past it: on crev's clock, which the
    # test holds.
    now = [1000.0]
    httpserver.expect_request("/token").respond_with_json({"token": "short", "expires_in": 1})
    route = with_server_credentials(httpserver, clock=lambda: now[0]).routes.default
    server_authorization(route, PULL)
    now[0] += 0.4
    server_authorization(route, PULL)
    assert len(token_requests(httpserver)) == 1
    now[0] += 0.2
    server_authorization(route, PULL)
    assert len(token_requests(httpserver)) == 2


def test_a_token_the_upstream_refuses_is_replaced_once(httpserver: HTTPServer) -> None:
    tokens = iter(["push", "stale", "fresh"])
    httpserver.expect_request("/token").respond_with_handler(
        lambda request: WerkzeugResponse(f'{{"token": "{next(tokens)}"}}', 200)
    )
    httpserver.expect_request(
        "/v2/acme/tool/manifests/1", headers={"Authorization": "Bearer fresh"}
    ).respond_with_data("manifest")
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}",
        status=401,
        headers={"WWW-Authenticate": f'Bearer realm="{httpserver.url_for("/token")}"'},
    )
    route = with_credentials(httpserver)
    assert server_authorization(route, PUSH) == "Bearer push"
    assert server_authorization(route, PULL) == "Bearer stale"
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), Headers())
    answer = route.upstream.send(request, PULL)
    assert (answer.status, answer.read(1024, TIMEOUT)) == (200, b"manifest")
    manifests = [r for r, _ in httpserver.log if r.path == "/v2/acme/tool/manifests/1"]
    assert [r.headers["Authorization"] for r in manifests] == ["Bearer stale", "Bearer fresh"]
    # The replacement is kept, and only the refused token was dropped.
    assert server_authorization(route, PULL) == "Bearer fresh"
    assert server_authorization(route, PUSH) == "Bearer push"
    assert len(token_requests(httpserver)) == 3


def test_a_static_token_the_upstream_refuses_is_the_answer(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    route = route_of(httpserver, upstream_token="ghp_static")
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), Headers())
    assert route.upstream.send(request, PULL).status == 401
    assert [r.path for r, _ in httpserver.log] == ["/v2/acme/tool/manifests/1"]


def test_the_realm_is_learned_from_the_upstream_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_request("/token").respond_with_json(
        {"access_token": "oauth", "expires_in": 300}
    )
    route = route_of(httpserver, upstream_username="crev", upstream_password="s3cret")
    assert server_authorization(route, PULL) == "Bearer oauth"
    assert server_authorization(route, PUSH) == "Bearer oauth"
    assert [request.path for request, _ in httpserver.log] == ["/v2/", "/token", "/token"]
    ping = httpserver.log[0][0]
    # Credentials go to the realm only, never to the registry's own /v2/.
    assert "Authorization" not in ping.headers
    assert parse_qsl(token_requests(httpserver)[0].query_string.decode())[0] == ("service", "reg")


def test_credentials_with_no_realm_to_use_are_an_upstream_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    route = route_of(httpserver, upstream_username="crev", upstream_password="s3cret")
    with pytest.raises(UpstreamError) as caught:
        server_authorization(route, PULL)
    assert (
        caught.value.message
        == f"upstream 127.0.0.1:{httpserver.port} announced no Bearer token realm"
    )


def test_refused_credentials_are_an_upstream_error_without_the_secret(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/token").respond_with_json({"errors": []}, status=401)
    with pytest.raises(UpstreamError) as caught:
        server_authorization(with_credentials(httpserver), PULL)
    assert caught.value.message == (
        "the upstream token realm did not accept crev's credentials (status 401)"
    )


@pytest.mark.parametrize(
    "answer", [{}, {"token": ""}, {"token": 5}, {"token": "t", "expires_in": "soon"}]
)
def test_an_answer_without_a_usable_token_is_an_upstream_error(
    httpserver: HTTPServer, answer: dict[str, object]
) -> None:
    httpserver.expect_request("/token").respond_with_json(answer)
    with pytest.raises(UpstreamError) as caught:
        server_authorization(with_credentials(httpserver), PULL)
    assert caught.value.message == "the upstream token realm answered without a token"


def test_a_public_route_asks_for_an_anonymous_token(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_request("/token").respond_with_json({"token": "anon", "expires_in": 300})
    route = route_of(httpserver, public="1")
    assert server_authorization(route, PULL) == "Bearer anon"
    (asked,) = token_requests(httpserver)
    assert "Authorization" not in asked.headers
    assert parse_qsl(asked.query_string.decode()) == [
        ("service", "reg"),
        ("scope", "repository:acme/tool:pull"),
    ]


def test_a_public_route_sends_nothing_where_no_token_is_wanted(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    assert server_authorization(route_of(httpserver, public="1"), PULL) is None
    assert [request.path for request, _ in httpserver.log] == ["/v2/"]


def test_a_public_route_sends_nothing_where_no_anonymous_token_is_granted(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    httpserver.expect_request("/token").respond_with_json({"errors": []}, status=401)
    assert server_authorization(route_of(httpserver, public="1"), PULL) is None


def test_authorize_puts_crevs_authorization_in_place_of_the_clients(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/token").respond_with_json({"token": "t1", "expires_in": 300})
    headers = Headers([("authorization", "Basic client"), ("Accept", "*/*")])
    sent = authorized(headers, with_credentials(httpserver), PULL)
    assert sent.items == [("Accept", "*/*"), ("Authorization", "Bearer t1")]
    # The request crev was given is a value: its own headers are as they were.
    assert headers.items == [("authorization", "Basic client"), ("Accept", "*/*")]


def test_authorize_takes_out_any_authorization_where_there_is_none(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    headers = Headers([("Authorization", "Bearer stale"), ("Accept", "*/*")])
    sent = authorized(headers, route_of(httpserver, public="1"), PULL)
    assert sent.items == [("Accept", "*/*")]


def test_an_answer_s_challenge_teaches_the_realm_as_it_is_sent(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    route = route_of(httpserver)
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), Headers())
    route.upstream.relay(request).release()
    # Known from the answer itself: no ping of the upstream's /v2/ to learn it.
    assert route.upstream.announced_realm() == Realm(URL.parse(httpserver.url_for("/token")), "reg")
    assert [r.path for r, _ in httpserver.log] == ["/v2/acme/tool/manifests/1"]


def test_without_an_answer_to_learn_from_the_realm_is_pinged_for_once(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    route = route_of(httpserver)
    for _ in range(2):
        assert route.upstream.announced_realm() == Realm(
            URL.parse(httpserver.url_for("/token")), "reg"
        )
    assert [r.path for r, _ in httpserver.log] == ["/v2/"]


def test_a_401_that_names_no_token_realm_is_the_answer_not_asked_again(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": 'Basic realm="registry"'}
    )
    route = route_of(httpserver, public="1")
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), Headers())
    assert route.upstream.send(request, PULL).status == 401
    # No token was sent and none can be had: the same request would be refused the same way.
    manifests = [r for r, _ in httpserver.log if r.path == "/v2/acme/tool/manifests/1"]
    assert len(manifests) == 1


def test_a_401_that_first_names_the_realm_is_asked_again_with_a_token(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=200)
    httpserver.expect_request("/token").respond_with_json({"token": "anonymous"})
    httpserver.expect_request(
        "/v2/acme/tool/manifests/1", headers={"Authorization": "Bearer anonymous"}
    ).respond_with_data("manifest")
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge(httpserver)
    )
    route = route_of(httpserver, public="1")
    request = UpstreamRequest("GET", route.upstream.url("/v2/acme/tool/manifests/1"), Headers())
    answer = route.upstream.send(request, PULL)
    assert (answer.status, answer.read(1024, TIMEOUT)) == (200, b"manifest")


# --- the realm policy, on a crev built over httpx's MockTransport ------------------------------


class Body(httpx.SyncByteStream):
    """A body httpx streams as from a socket (one it was given whole, it reads at once)."""

    def __init__(self, document: object) -> None:
        self._bytes = json.dumps(document).encode()

    def __iter__(self) -> Iterator[bytes]:
        yield self._bytes


class RecordingUpstream:
    """An https registry that names a plain http realm, as httpx's `MockTransport` answers;
    it records every URL crev asks, the realm's included."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        if request.url.host == "auth.example":
            return httpx.Response(200, stream=Body({"token": "t", "expires_in": 300}))
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": 'Bearer realm="http://auth.example/token",service="r"'},
            stream=Body({"errors": [{"code": "UNAUTHORIZED", "message": "log in"}]}),
        )

    def settings(self, **variables: str) -> Settings:
        env = {"CREV_REGISTRY_HOST": "registry.example", "CREV_REPO_PREFIX": "acme"}
        env.update({f"CREV_{name.upper()}": value for name, value in variables.items()})
        client = httpx.Client(transport=httpx.MockTransport(self))
        return Settings.from_env(env, connections=Connections(lambda: client))


def test_crevs_credentials_never_go_to_an_http_realm_of_an_https_upstream() -> None:
    upstream = RecordingUpstream()
    settings = upstream.settings(upstream_username="crev", upstream_password="s3cret")
    with refused() as refusal:
        serve_registry(request("GET", "/v2/tool/manifests/1"), settings)
    assert refusal.status == 502
    assert refusal.message == (
        "upstream registry.example names the token realm http://auth.example/token over plain "
        "http: crev sends no credentials there"
    )
    # The ping that named the realm, and nothing sent to the realm.
    assert upstream.asked == ["https://registry.example/v2/"]


def test_a_clients_login_never_goes_to_an_http_realm_of_an_https_upstream() -> None:
    upstream = RecordingUpstream()
    settings = upstream.settings()
    login = ("Authorization", "Basic " + base64.b64encode(b"user:pw").decode())
    with refused() as refusal:
        serve_token(request("GET", "/api/token", "scope=repository:tool:pull", [login]), settings)
    assert refusal.status == 502
    assert "http://auth.example/token" in refusal.message
    assert upstream.asked == ["https://registry.example/v2/"]
    # A form's password is a login too.
    form = b"grant_type=password&username=u&password=pw&scope=repository:tool:pull"
    with refused() as refusal:
        serve_token(
            request(
                "POST",
                "/api/token",
                headers=[("Content-Type", "application/x-www-form-urlencoded")],
                body=form,
            ),
            settings,
        )
    assert refusal.status == 502
    assert upstream.asked == ["https://registry.example/v2/"]


def test_an_anonymous_token_may_come_from_an_http_realm() -> None:
    # No credential goes: an anonymous token request is as public as the pull it is for.
    upstream = RecordingUpstream()
    settings = upstream.settings(public="1")
    response = serve_registry(request("GET", "/v2/tool/manifests/1"), settings)
    assert response.status == 401
    assert "http://auth.example/token?service=r&scope=repository%3Aacme%2Ftool%3Apull" in (
        upstream.asked
    )


# --- a new method is one class (docs/internals.md shows this one) ------------------------------


class BasicLogin(UpstreamAuth):
    """Server-side: HTTP Basic on every request, for a registry that issues no tokens."""

    server_side = True
    # A 401 to a password is the answer: there is no other to send.
    refreshes = False

    def __init__(self, username: str, password: str) -> None:
        self.login = Login(username, password)

    def authorizes(self, *, write: bool, client_authorized: bool) -> bool:
        return True

    def authorization(self, upstream: TokenSource, scopes: tuple[Scope, ...]) -> Grant:
        return Grant(self.login.basic())

    def _secrets(self) -> tuple[str, ...]:
        return (self.login.username, self.login.password)


def test_a_new_authentication_method_is_one_class(httpserver: HTTPServer) -> None:
    basic = "Basic " + base64.b64encode(b"crev:s3cret").decode()
    httpserver.expect_request(
        "/v2/acme/tool/manifests/1", headers={"Authorization": basic}
    ).respond_with_data("manifest")
    upstream = Upstream(
        Origin("http", f"127.0.0.1:{httpserver.port}"),
        Namespace("acme"),
        BasicLogin("crev", "s3cret"),
        timeout=TIMEOUT,
    )
    route = Route("", (upstream,))
    assert route.server_side and route.crev_authorizes(write=True, client_authorized=True)
    request = UpstreamRequest("GET", upstream.url("/v2/acme/tool/manifests/1"), Headers())
    answer = upstream.send(request, PULL)
    assert (answer.status, answer.read(1024, TIMEOUT)) == (200, b"manifest")
    assert "s3cret" not in repr(upstream)


def test_the_class_docs_internals_shows_is_this_one() -> None:
    internals = (PROJECT_ROOT / "docs" / "internals.md").read_text()
    shown = internals.split("### Adding an authentication method", 1)[1]
    code = shown.split("```python\n", 1)[1].split("```", 1)[0]
    assert code == inspect.getsource(BasicLogin)
