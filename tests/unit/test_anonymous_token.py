"""The anonymous tokens an upstream keeps (crev/upstream/anonymous_token.py): kept by exactly
what was asked, handed out while enough of their life is left, with what is left, and only
when the realm's answer is one any anonymous client would get and crev can read."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from pytest_httpserver import HTTPServer

from crev.messages import Headers
from crev.names import Namespace
from crev.upstream import Upstream
from crev.upstream.anonymous_token import (
    MAX_KEPT_BODY,
    MIN_LEFT_SECONDS,
    AnonymousTokens,
    key_of,
)
from crev.upstream.connections import Connections, UpstreamRequest
from crev.upstream.response import HeldAnswer, UpstreamResponse
from crev.urls import URL, Origin

REALM = URL.parse("https://auth.example/token?service=registry&scope=repository:acme/tool:pull")
ISSUED = {"token": "t0k3n", "expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"}
WALL = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RealmAnswer:
    """A realm's answer as the connections give it: read whole, once."""

    def __init__(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or Headers([("Content-Type", "application/json")])
        self.reads = 0

    method = "GET"

    def read(self, limit: int, timeout: float) -> bytes:
        self.reads += 1
        return self.body[:limit]

    held = UpstreamResponse.held


def tokens(clock: Clock, **kwargs: object) -> AnonymousTokens:
    return AnonymousTokens(clock, wall_clock=lambda: WALL + clock.now, **kwargs)  # type: ignore[arg-type]


def learn(
    kept: AnonymousTokens, document: object, url: URL = REALM, status: int = 200
) -> HeldAnswer:
    answer = RealmAnswer(status, json.dumps(document).encode())
    learned = kept.learned_from(url, answer, 1000.0, 1 << 20, 5.0)  # type: ignore[arg-type]
    assert not learned.from_memory
    assert learned.read(1 << 20, 5.0) == answer.body
    assert learned.status == status
    return learned


def test_the_key_is_what_was_asked_in_any_order() -> None:
    reordered = URL.parse(
        "https://auth.example/token?scope=repository:acme/tool:pull&service=registry"
    )
    assert key_of(REALM) == key_of(reordered)
    other = URL.parse("https://auth.example/token?service=registry&scope=repository:acme/x:pull")
    assert key_of(REALM) != key_of(other)
    elsewhere = URL.parse(
        "https://auth2.example/token?service=registry&scope=repository:acme/tool:pull"
    )
    assert key_of(REALM) != key_of(elsewhere)


def test_a_kept_token_is_handed_out_with_what_is_left_of_its_life() -> None:
    clock = Clock()
    kept = tokens(clock)
    assert kept.recall(REALM) is None
    learn(kept, ISSUED)
    clock.now += 100.5
    answer = kept.recall(REALM)
    assert answer is not None and answer.from_memory and answer.status == 200
    document = json.loads(answer.read(1 << 20, 5.0))
    assert document["token"] == "t0k3n"
    assert document["expires_in"] == 199
    issued_at = dt.datetime.fromisoformat(document["issued_at"])
    assert issued_at.timestamp() == int(WALL + clock.now)
    assert answer.headers.get("content-type") == "application/json"
    assert answer.headers.get("cache-control") == "no-store"
    assert answer.headers.get("content-length") == str(len(answer.body))


def test_a_token_with_too_little_life_left_is_asked_anew() -> None:
    clock = Clock()
    kept = tokens(clock)
    learn(kept, ISSUED)
    # A third of 300 s is 100 s, more than the minimum: handed out until 100 s are left.
    clock.now += 200
    assert kept.recall(REALM) is not None
    clock.now += 0.5
    assert kept.recall(REALM) is None
    assert len(kept) == 0


def test_a_short_lived_token_is_handed_out_while_a_minute_is_left() -> None:
    clock = Clock()
    kept = tokens(clock)
    learn(kept, {"token": "t", "expires_in": 90})
    clock.now += 30
    assert kept.recall(REALM) is not None
    clock.now += 0.5
    assert kept.recall(REALM) is None


@pytest.mark.parametrize(
    ("status", "document"),
    [
        (200, {"token": "t"}),
        (200, {"token": "t", "expires_in": MIN_LEFT_SECONDS}),
        (200, {"token": "t", "expires_in": "300"}),
        (200, {"token": "t", "expires_in": True}),
        (200, {"token": "t", "expires_in": 300.5}),
        (200, {"token": "t", "expires_in": 300, "refresh_token": "r"}),
        (200, {"token": "", "expires_in": 300}),
        (200, {"expires_in": 300}),
        (200, ["t0k3n"]),
        (401, ISSUED),
        (500, ISSUED),
        (200, {**ISSUED, "padding": "x" * MAX_KEPT_BODY}),
    ],
)
def test_answers_not_worth_keeping(status: int, document: object) -> None:
    kept = tokens(Clock())
    learn(kept, document, status=status)
    assert kept.recall(REALM) is None


def test_an_access_token_alone_is_kept() -> None:
    kept = tokens(Clock())
    learn(kept, {"access_token": "a", "expires_in": 300})
    answer = kept.recall(REALM)
    assert answer is not None
    assert json.loads(answer.body)["access_token"] == "a"


def test_the_memory_is_bounded_dropping_the_oldest() -> None:
    clock = Clock()
    kept = tokens(clock, max_entries=3)
    urls = [REALM.with_query([("scope", f"repository:acme/r{n}:pull")]) for n in range(5)]
    for url in urls:
        learn(kept, ISSUED, url)
    assert len(kept) == 3
    assert [kept.recall(url) is not None for url in urls] == [False, False, True, True, True]


def test_forget_drops_every_token() -> None:
    kept = tokens(Clock())
    learn(kept, ISSUED)
    kept.forget()
    assert kept.recall(REALM) is None


def test_concurrent_learning_and_recalling_keeps_the_bound() -> None:
    clock = Clock()
    kept = tokens(clock, max_entries=8)

    def work(n: int) -> None:
        for i in range(200):
            url = REALM.with_query([("scope", f"repository:acme/r{n}-{i % 20}:pull")])
            learn(kept, ISSUED, url)
            kept.recall(url)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kept) == 8


def test_an_upstream_asks_its_realm_once_for_the_same_anonymous_token(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/token").respond_with_json({"token": "t", "expires_in": 300})
    upstream = Upstream(
        Origin("http", f"127.0.0.1:{httpserver.port}"), Namespace("acme"), connections=Connections()
    )
    url = upstream.url("/token?service=registry&scope=repository:acme/tool:pull")
    request = UpstreamRequest("GET", url, Headers())
    first = upstream.anonymous_token(request)
    second = upstream.anonymous_token(request)
    assert (first.from_memory, second.from_memory) == (False, True)
    assert [json.loads(answer.body)["token"] for answer in (first, second)] == ["t", "t"]
    assert len(httpserver.log) == 1
