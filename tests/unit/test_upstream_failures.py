"""How an upstream failed, as crev/upstream.py names it for failover (refused, a TLS handshake
that failed, a reset, no answer head in time), and the shorter wait for an answer head that
`head_within` sets while a body keeps the whole timeout; against raw-socket stand-ins."""

from __future__ import annotations

import ssl
import time

import pytest
import trustme

from crev import upstream
from crev.errors import (
    UpstreamClosedError,
    UpstreamTimeoutError,
    UpstreamTLSError,
    UpstreamUnreachableError,
)
from crev.messages import Headers
from crev.transport import reset_client
from crev.urls import URL
from tests.support.faulty_upstream import (
    RawUpstream,
    closed_port,
    head,
    respond,
    silent,
)


@pytest.fixture(autouse=True)
def fresh_client():
    reset_client()
    yield
    reset_client()


def get(url: str, timeout: float = 5.0) -> upstream.UpstreamResponse:
    return upstream.send(
        upstream.UpstreamRequest("GET", URL.parse(url + "/v2/"), Headers()), timeout
    )


def test_a_refused_connection_is_unreachable() -> None:
    with pytest.raises(UpstreamUnreachableError) as caught:
        get(f"http://127.0.0.1:{closed_port()}")
    assert not isinstance(caught.value, UpstreamTLSError)
    assert "is unreachable" in caught.value.message


def test_a_certificate_crev_does_not_trust_is_a_tls_failure() -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    with RawUpstream(tls=context) as server, pytest.raises(UpstreamTLSError) as caught:
        get(server.url)
    assert "is unreachable" in caught.value.message


def test_a_reset_before_any_answer_is_a_close() -> None:
    def reset(request, conn) -> None:
        conn.reset()

    with (
        RawUpstream(route=lambda request: reset) as server,
        pytest.raises(UpstreamClosedError) as caught,
    ):
        get(server.url)
    assert "closed the connection without answering" in caught.value.message
    # Sent twice: a reused connection closed under it looks the same, and a GET may be resent.
    assert len(server.requests) == 2


def test_within_head_within_an_answer_head_is_waited_for_that_long_only() -> None:
    with RawUpstream(route=lambda request: silent(10)) as server:
        started = time.monotonic()
        with upstream.head_within(0.5), pytest.raises(UpstreamTimeoutError) as caught:
            get(server.url, timeout=5)
        waited = time.monotonic() - started
    assert 0.4 < waited < 2.5
    assert "did not answer within 0.5 s" in caught.value.message


def test_head_within_never_lengthens_the_timeout_and_nests_to_the_shorter() -> None:
    with RawUpstream(route=lambda request: silent(10)) as server:
        started = time.monotonic()
        with upstream.head_within(5), upstream.head_within(8), pytest.raises(UpstreamTimeoutError):
            get(server.url, timeout=0.5)
        assert time.monotonic() - started < 2.5
    assert getattr(upstream._head, "seconds", None) is None


def test_a_body_after_a_quick_head_keeps_the_whole_timeout() -> None:
    def slow_body(request, conn) -> None:
        conn.send(head(200, [("Content-Length", "4")]) + b"ab")
        conn.sleep(1.2)
        conn.send(b"cd")

    with RawUpstream(route=lambda request: slow_body) as server:
        with upstream.head_within(0.5):
            answer = get(server.url, timeout=5)
        assert answer.read(100, 5) == b"abcd"


def test_outside_head_within_the_timeout_bounds_the_head() -> None:
    with RawUpstream(route=lambda request: respond(200)) as server:
        assert get(server.url, timeout=5).status == 200
