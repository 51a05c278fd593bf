"""How an upstream failed, as crev/upstream/connections.py names it for failover (refused, a TLS
handshake that failed, a reset, no answer head in time), and the shorter wait for an answer head
that `head_within` sets while a body keeps the whole timeout; against raw-socket stand-ins."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import pytest
import trustme

from crev.errors import (
    UpstreamClosedError,
    UpstreamTimeoutError,
    UpstreamTLSError,
    UpstreamUnreachableError,
)
from crev.messages import Headers
from crev.upstream.connections import Connections, UpstreamRequest, _head, head_within
from crev.upstream.response import UpstreamResponse
from crev.urls import URL
from tests.support.faulty_upstream import RawUpstream, closed_port, head, respond, silent


@pytest.fixture
def connections() -> Iterator[Connections]:
    made = Connections()
    yield made
    made.close()


def get(connections: Connections, url: str, timeout: float = 5.0) -> UpstreamResponse:
    return connections.send(UpstreamRequest("GET", URL.parse(url + "/v2/"), Headers()), timeout)


def test_a_refused_connection_is_unreachable(connections: Connections) -> None:
    with pytest.raises(UpstreamUnreachableError) as caught:
        get(connections, f"http://127.0.0.1:{closed_port()}")
    assert not isinstance(caught.value, UpstreamTLSError)
    assert "is unreachable" in caught.value.message


def test_a_certificate_crev_does_not_trust_is_a_tls_failure(connections: Connections) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    with RawUpstream(tls=context) as server, pytest.raises(UpstreamTLSError) as caught:
        get(connections, server.url)
    assert "is unreachable" in caught.value.message


def test_a_reset_before_any_answer_is_a_close(connections: Connections) -> None:
    def reset(request, conn) -> None:
        conn.reset()

    with RawUpstream(route=lambda request: reset) as server:
        with pytest.raises(UpstreamClosedError) as caught:
            get(connections, server.url)
        # Sent twice: a reused connection closed under it looks the same, and a GET may be
        # sent again.
        assert len(server.requests) == 2
    assert "closed the connection without answering" in caught.value.message


def test_within_head_within_an_answer_head_is_waited_for_that_long_only(
    connections: Connections,
) -> None:
    with RawUpstream(route=lambda request: silent(10)) as server:
        started = time.monotonic()
        with head_within(0.5), pytest.raises(UpstreamTimeoutError) as caught:
            get(connections, server.url, timeout=5)
        waited = time.monotonic() - started
    assert 0.4 < waited < 2.5
    assert "did not answer within 0.5 s" in caught.value.message


def test_head_within_never_lengthens_the_timeout_and_nests_to_the_shorter(
    connections: Connections,
) -> None:
    with RawUpstream(route=lambda request: silent(10)) as server:
        started = time.monotonic()
        with head_within(5), head_within(8), pytest.raises(UpstreamTimeoutError):
            get(connections, server.url, timeout=0.5)
        assert time.monotonic() - started < 2.5
    assert getattr(_head, "seconds", None) is None


def test_a_body_after_a_quick_head_keeps_the_whole_timeout(connections: Connections) -> None:
    def slow_body(request, conn) -> None:
        conn.send(head(200, [("Content-Length", "4")]) + b"ab")
        conn.sleep(1.2)
        conn.send(b"cd")

    with RawUpstream(route=lambda request: slow_body) as server:
        with head_within(0.5):
            answer = get(connections, server.url, timeout=5)
        assert answer.read(100, 5) == b"abcd"


def test_outside_head_within_the_timeout_bounds_the_head(connections: Connections) -> None:
    with RawUpstream(route=lambda request: respond(200)) as server:
        assert get(connections, server.url, timeout=5).status == 200
