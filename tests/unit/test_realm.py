"""An upstream's token realm (crev/upstream/realm.py): its token URL, learned from the challenges an
upstream sends and kept by each upstream, configured or discovered by one ping of `/v2/`."""

from __future__ import annotations

import pytest
from pytest_httpserver import HTTPServer

from crev.errors import UpstreamError
from crev.messages import Headers
from crev.names import RepositoryName
from crev.scope import Scope
from crev.upstream.realm import Realm, RealmKnowledge
from crev.urls import URL
from tests.support.service_calls import settings_for

TOKEN = URL.parse("https://ghcr.io/token")
PULL = Scope.repository(RepositoryName("acme/tool"), "pull")
PUSH = Scope.repository(RepositoryName("acme/x"), "pull", "push")


def challenged(*values: str) -> Headers:
    return Headers([("WWW-Authenticate", value) for value in values])


# --- Realm.url_for ----------------------------------------------------------------------------


def test_a_token_url_names_the_service_then_each_scope() -> None:
    url = Realm(TOKEN, "ghcr.io").url_for([PULL, PUSH], account="crev")
    assert str(url) == (
        "https://ghcr.io/token?service=ghcr.io&scope=repository%3Aacme%2Ftool%3Apull"
        "&scope=repository%3Aacme%2Fx%3Apull%2Cpush&account=crev"
    )


def test_a_realm_without_a_service_names_none() -> None:
    assert str(Realm(TOKEN).url_for([PULL])) == (
        "https://ghcr.io/token?scope=repository%3Aacme%2Ftool%3Apull"
    )
    assert str(Realm(TOKEN, "").url_for([])) == "https://ghcr.io/token"


def test_a_realm_keeps_its_own_query() -> None:
    realm = Realm(URL.parse("https://auth.example/token?tenant=acme"), "reg")
    assert str(realm.url_for([])) == "https://auth.example/token?tenant=acme&service=reg"


# --- RealmKnowledge ---------------------------------------------------------------------------


def test_the_bearer_realm_of_a_challenge_is_learned() -> None:
    realms = RealmKnowledge()
    realms.learn(
        challenged('Basic realm="x", Bearer realm="https://ghcr.io/token",service="ghcr.io"')
    )
    assert realms.known() == Realm(TOKEN, "ghcr.io")
    # Each upstream knows its own.
    assert RealmKnowledge().known() is None


@pytest.mark.parametrize(
    "headers",
    [
        Headers(),
        challenged('Basic realm="registry"'),
        challenged('Bearer service="no-realm"'),
        challenged('Bearer realm="/relative/token"'),
        challenged('Bearer realm="ftp://ghcr.io/token"'),
        challenged('Bearer realm="unterminated'),
    ],
)
def test_an_answer_without_a_usable_bearer_realm_teaches_nothing(headers: Headers) -> None:
    realms = RealmKnowledge()
    realms.learn(headers)
    assert realms.known() is None


def test_a_malformed_challenge_does_not_hide_a_good_one() -> None:
    realms = RealmKnowledge()
    realms.learn(challenged('Bearer realm="unterminated', 'Bearer realm="https://ghcr.io/token"'))
    assert realms.known() == Realm(TOKEN)


def test_a_new_realm_replaces_the_old_and_an_answer_without_one_keeps_it() -> None:
    realms = RealmKnowledge()
    realms.learn(challenged('Bearer realm="https://old.example/token"'))
    realms.learn(challenged('Bearer realm="https://ghcr.io/token",service="ghcr.io"'))
    realms.learn(Headers())
    assert realms.known() == Realm(TOKEN, "ghcr.io")


# --- Upstream.announced_realm and Upstream.realm ----------------------------------------------


def challenge_for(upstream: HTTPServer) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="{upstream.url_for("/token")}",service="reg"'}


def test_the_realm_is_discovered_by_one_ping(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers=challenge_for(httpserver)
    )
    route = settings_for(httpserver).routes.default
    expected = Realm(URL.parse(httpserver.url_for("/token")), "reg")
    assert route.upstream.announced_realm() == expected
    assert route.upstream.realm() == expected
    assert [request.path for request, _ in httpserver.log] == ["/v2/"]
    # The ping carries nothing of a client's.
    assert "Authorization" not in httpserver.log[0][0].headers


def test_a_realm_learned_from_any_answer_spares_the_ping(httpserver: HTTPServer) -> None:
    route = settings_for(httpserver).routes.default
    route.upstream.learn_realm(Headers(list(challenge_for(httpserver).items())))
    assert route.upstream.announced_realm() == Realm(URL.parse(httpserver.url_for("/token")), "reg")
    assert httpserver.log == []


def test_a_configured_realm_is_used_with_the_learned_service(httpserver: HTTPServer) -> None:
    route = settings_for(httpserver, token_realm="https://auth.example/token").routes.default
    assert route.upstream.announced_realm() == Realm(URL.parse("https://auth.example/token"))
    route.upstream.learn_realm(
        challenged('Bearer realm="https://elsewhere.example/t",service="reg"')
    )
    assert route.upstream.announced_realm() == Realm(URL.parse("https://auth.example/token"), "reg")
    assert httpserver.log == []


def test_an_upstream_that_wants_no_token_announces_no_realm(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    route = settings_for(httpserver).routes.default
    assert route.upstream.announced_realm() is None
    with pytest.raises(UpstreamError) as caught:
        route.upstream.realm()
    assert caught.value.message == (
        f"upstream 127.0.0.1:{httpserver.port} announced no Bearer token realm"
    )


def test_an_open_upstream_is_pinged_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    route = settings_for(httpserver).routes.default
    for _ in range(3):
        assert route.upstream.announced_realm() is None
    assert [request.path for request, _ in httpserver.log] == ["/v2/"]


def test_an_open_upstream_that_later_challenges_teaches_its_realm(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}")
    route = settings_for(httpserver).routes.default
    assert route.upstream.announced_realm() is None
    route.upstream.learn_realm(Headers(list(challenge_for(httpserver).items())))
    assert route.upstream.announced_realm() == Realm(URL.parse(httpserver.url_for("/token")), "reg")
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("status", [500, 404])
def test_a_failed_ping_is_not_taken_for_an_open_upstream(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", status=status)
    route = settings_for(httpserver).routes.default
    assert route.upstream.announced_realm() is None
    assert route.upstream.announced_realm() is None
    assert len(httpserver.log) == 2
