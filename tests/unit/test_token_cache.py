"""crev/upstream/token_cache.py: one fetch per key, eviction; and the cache under
`Upstream.send`, with threads against a stand-in realm that counts what it is asked."""

from __future__ import annotations

import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.errors import UpstreamError
from crev.messages import Headers
from crev.names import Namespace, RepositoryName
from crev.scope import Scope
from crev.upstream import Upstream
from crev.upstream.auth import RealmCredentials
from crev.upstream.connections import UpstreamRequest
from crev.upstream.token_cache import CachedToken, TokenCache
from crev.urls import Origin


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_token_is_served_from_the_cache() -> None:
    cache = TokenCache(clock=Clock())
    fetched: list[str] = []

    def fetch() -> CachedToken:
        fetched.append("x")
        return CachedToken("t", 2000.0)

    assert cache.get("k", fetch) == CachedToken("t", 2000.0)
    assert cache.get("k", fetch) == CachedToken("t", 2000.0)
    assert fetched == ["x"]


def test_an_expired_token_is_fetched_again_and_dropped_meanwhile() -> None:
    clock = Clock()
    cache = TokenCache(clock=clock)
    tokens = iter([CachedToken("old", 1010.0), CachedToken("new", 2000.0)])
    assert cache.get("k", lambda: next(tokens)).value == "old"
    clock.now = 1010.0
    assert cache.get("k", lambda: next(tokens)).value == "new"
    assert len(cache) == 1


def test_nothing_is_kept_for_a_fetch_that_gives_no_token() -> None:
    cache = TokenCache(clock=Clock())
    asked: list[int] = []

    def fetch() -> None:
        asked.append(1)

    assert cache.get("k", fetch) is None
    assert cache.get("k", fetch) is None
    assert len(asked) == 2
    assert len(cache) == 0


def test_a_failed_fetch_is_not_kept_and_the_next_miss_fetches_again() -> None:
    cache = TokenCache(clock=Clock())

    def fail() -> CachedToken:
        raise UpstreamError("realm down")

    with pytest.raises(UpstreamError, match="realm down"):
        cache.get("k", fail)
    assert cache.get("k", lambda: CachedToken("t", 2000.0)).value == "t"


def test_past_its_bound_the_cache_drops_expired_tokens_then_the_least_recently_used() -> None:
    clock = Clock()
    cache = TokenCache(max_entries=3, clock=clock)
    cache.get("expired", lambda: CachedToken("e", 1001.0))
    cache.get("a", lambda: CachedToken("a", 2000.0))
    cache.get("b", lambda: CachedToken("b", 2000.0))
    clock.now = 1002.0
    cache.get("c", lambda: CachedToken("c", 2000.0))
    assert len(cache) == 3  # the expired one went, not "a"
    cache.get("a", lambda: pytest.fail("a is still cached"))  # "a" is now the most recent
    cache.get("d", lambda: CachedToken("d", 2000.0))
    assert len(cache) == 3
    refetched: list[str] = []
    cache.get("b", lambda: refetched.append("b") or CachedToken("b", 2000.0))
    assert refetched == ["b"]  # "b" was the least recently used


def test_forget_drops_one_key() -> None:
    cache = TokenCache(clock=Clock())
    cache.get("a", lambda: CachedToken("a", 2000.0))
    cache.get("b", lambda: CachedToken("b", 2000.0))
    cache.forget("a")
    assert cache.get("a", lambda: CachedToken("a2", 2000.0)).value == "a2"
    assert cache.get("b", lambda: pytest.fail("b was forgotten")).value == "b"


def _concurrently(count: int, work) -> list[object]:
    """`work()` on `count` threads started together; what each returned or raised."""
    start = threading.Barrier(count)
    outcomes: list[object] = [None] * count

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = work()
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return outcomes


def test_concurrent_misses_of_one_key_wait_for_one_fetch() -> None:
    cache = TokenCache()
    calls: list[int] = []

    def slow_fetch() -> CachedToken:
        calls.append(1)
        time.sleep(0.2)
        return CachedToken("t", time.monotonic() + 60)

    outcomes = _concurrently(8, lambda: cache.get("k", slow_fetch))
    assert len(calls) == 1
    assert {outcome.value for outcome in outcomes} == {"t"}  # type: ignore[union-attr]


def test_concurrent_misses_share_the_fetch_s_failure() -> None:
    cache = TokenCache()
    calls: list[int] = []

    def failing_fetch() -> CachedToken:
        calls.append(1)
        time.sleep(0.2)
        raise UpstreamError("realm down")

    outcomes = _concurrently(4, lambda: cache.get("k", failing_fetch))
    assert len(calls) == 1
    assert all(isinstance(outcome, UpstreamError) for outcome in outcomes)


def test_misses_of_different_keys_fetch_in_parallel() -> None:
    cache = TokenCache()
    keys = iter(range(4))
    lock = threading.Lock()

    def fetch() -> CachedToken:
        time.sleep(0.3)
        return CachedToken("t", time.monotonic() + 60)

    def work() -> CachedToken | None:
        with lock:
            key = next(keys)
        return cache.get(key, fetch)

    started = time.monotonic()
    _concurrently(4, work)
    assert time.monotonic() - started < 1.0  # not 4 x 0.3 s one after another
    assert len(cache) == 4


# --- the cache under Upstream.send --------------------------------------------------------------


def test_concurrent_requests_for_one_scope_ask_the_realm_once(httpserver: HTTPServer) -> None:
    realm = httpserver.url_for("/token")
    httpserver.expect_request("/v2/").respond_with_data(
        "{}", status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'}
    )
    token_requests: list[str] = []

    def issue(request: WerkzeugRequest) -> WerkzeugResponse:
        token_requests.append(request.args.get("scope", ""))
        time.sleep(0.3)  # long enough for every thread to miss before the first token comes
        return WerkzeugResponse('{"token": "granted", "expires_in": 300}', 200)

    httpserver.expect_request("/token").respond_with_handler(issue)
    httpserver.expect_request(
        "/v2/acme/tool/manifests/1", headers={"Authorization": "Bearer granted"}
    ).respond_with_data("manifest")
    upstream = Upstream(
        Origin("http", f"127.0.0.1:{httpserver.port}"),
        Namespace("acme"),
        RealmCredentials("crev", "secret"),
        timeout=5.0,
    )
    upstream_name = upstream.to_upstream(RepositoryName("tool"))
    scopes = (Scope.repository(upstream_name, "pull"),)

    def pull() -> int:
        request = UpstreamRequest("GET", upstream.url("/v2/acme/tool/manifests/1"), Headers())
        answer = upstream.send(request, scopes)
        answer.read(1024, 5.0)
        return answer.status

    assert _concurrently(6, pull) == [200] * 6
    assert token_requests == ["repository:acme/tool:pull"]
    manifests = [r for r, _ in httpserver.log if r.path == "/v2/acme/tool/manifests/1"]
    assert len(manifests) == 6
