"""What an upstream learned of its `/v2/` (crev/upstream/ping.py): a ping answered from it while
it is trusted, asked again once `KEPT_SECONDS` have passed, and only answers that say how the
registry authenticates kept."""

from __future__ import annotations

from pytest_httpserver import HTTPServer

from crev.messages import Headers
from crev.names import Namespace
from crev.upstream import Upstream
from crev.upstream.connections import Connections, UpstreamRequest
from crev.upstream.ping import KEPT_SECONDS
from crev.upstream.response import HeldAnswer
from crev.urls import Origin

CHALLENGE = 'Bearer realm="https://auth.example/token",service="registry"'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream_of(server: HTTPServer, clock: Clock) -> Upstream:
    return Upstream(
        Origin("http", f"127.0.0.1:{server.port}"),
        Namespace("acme"),
        connections=Connections(),
        clock=clock,
    )


def ping(upstream: Upstream, method: str = "GET") -> HeldAnswer:
    answer = upstream.ping(
        UpstreamRequest(method, upstream.url("/v2/"), Headers()), authorize=False
    )
    assert isinstance(answer, HeldAnswer)
    return answer


def test_a_learned_ping_is_trusted_for_its_time_then_asked_again(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data(
        '{"errors":[]}', 401, {"WWW-Authenticate": CHALLENGE, "X-Request-Id": "1"}
    )
    clock = Clock()
    upstream = upstream_of(httpserver, clock)
    first = ping(upstream)
    assert (first.status, first.from_memory, first.body) == (401, False, b'{"errors":[]}')
    clock.now += KEPT_SECONDS - 1
    kept = ping(upstream)
    assert (kept.status, kept.from_memory, kept.body) == (401, True, b'{"errors":[]}')
    assert list(kept.headers) == [
        ("WWW-Authenticate", CHALLENGE),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", "13"),
    ]
    assert len(httpserver.log) == 1
    clock.now += 1
    assert not ping(upstream).from_memory
    assert len(httpserver.log) == 2


def test_a_head_is_answered_without_a_body_and_teaches_nothing(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v2/").respond_with_data("{}", 200)
    upstream = upstream_of(httpserver, Clock())
    asked = upstream.ping(UpstreamRequest("HEAD", upstream.url("/v2/"), Headers()), authorize=False)
    asked.release()
    assert not isinstance(asked, HeldAnswer)
    ping(upstream, "GET")
    head = ping(upstream, "HEAD")
    assert (head.from_memory, head.has_body, head.headers.get("content-length")) == (
        True,
        False,
        "2",
    )
    assert len(httpserver.log) == 2


def test_a_coded_body_is_kept_decoded(httpserver: HTTPServer) -> None:
    import gzip

    httpserver.expect_request("/v2/").respond_with_data(
        gzip.compress(b"{}"), 200, {"Content-Encoding": "gzip"}
    )
    upstream = upstream_of(httpserver, Clock())
    first = ping(upstream)
    assert (first.body, first.headers.get("content-encoding")) == (b"{}", None)
    assert first.headers.get("content-length") == "2"
    assert ping(upstream).body == b"{}"
