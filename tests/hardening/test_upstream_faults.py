"""Upstream faults: each is a 502/504 registry JSON error within a bounded time, or a stream cut
so the client sees a failure (never a short body presented as complete), and crev goes on
serving.

crev fronts two routes here: `bad/...` goes to the upstream under test, everything else to a
healthy one, so after every fault a normal pull through the same crev must still work.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme
from pytest_httpserver import HTTPServer

from rig.crev_process import serving_acme
from tests.support.crev_server import CrevServer
from tests.support.faulty_upstream import (
    MANIFEST,
    UPSTREAM_MARK,
    Behaviour,
    RawRequest,
    RawUpstream,
    chunked_cut,
    closed_port,
    cut_mid_body,
    drip_body,
    drip_head,
    healthy,
    raw_answer,
    respond,
    silent,
    stall_mid_body,
)
from tests.support.wire import (
    exchange,
    fetch,
    http_error,
    parse,
    port_of,
    raw_error,
    request_bytes,
)

DIGEST = "sha256:" + "c" * 64
TIMEOUT = 1.0
# A fault must be answered (or the stream cut) well within this: timeout + slack for 2 cores.
BOUND = TIMEOUT + 2.0
BLOB = bytes(range(256)) * 1024  # 256 KiB: several of crev's 64 KiB chunks
Front = Callable[..., CrevServer]


@pytest.fixture
def healthy_upstream() -> Iterator[RawUpstream]:
    with RawUpstream(route=healthy) as server:
        yield server


@pytest.fixture
def faulty() -> Iterator[RawUpstream]:
    with RawUpstream() as server:
        yield server


@pytest.fixture
def front(start_crev: Callable[..., CrevServer], healthy_upstream: RawUpstream) -> Front:
    """crev with `bad/` routed to `origin` (scheme://host) and the rest to the healthy upstream."""

    def start(origin: str, **settings: str) -> CrevServer:
        routes = f"bad/={origin}/acme, =http://{healthy_upstream.host}/acme"
        return start_crev(routes=routes, upstream_timeout=f"{TIMEOUT:g}", **settings)

    return start


def still_serving(crev: CrevServer, upstream: RawUpstream) -> None:
    """A normal pull through the same crev works after the fault."""
    seen = len(upstream.requests)
    response = fetch("GET", f"{crev.url}/v2/tool/manifests/1", timeout=10)
    assert response.status_code == 200
    assert response.content == MANIFEST
    assert response.headers[UPSTREAM_MARK[0]] == UPSTREAM_MARK[1]
    assert upstream.paths()[seen:] == ["/v2/acme/tool/manifests/1"]


def timed_get(url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = fetch("GET", url, **kwargs)
    return response, time.monotonic() - started


FaultCheck = Callable[..., None]


@pytest.fixture
def check_fault_is_an_error(
    front: Front, faulty: RawUpstream, healthy_upstream: RawUpstream
) -> FaultCheck:
    """`check(route, status, target)`: with `faulty` answering as `route` says, crev answers
    `target` on the bad route with an UNAVAILABLE error of `status` within BOUND, and goes on
    serving the healthy route."""

    def check(
        route: Callable[[RawRequest], Behaviour],
        status: int,
        target: str = "/v2/bad/tool/manifests/1",
    ) -> None:
        faulty.route = route
        crev = front(faulty.url)
        response, elapsed = timed_get(f"{crev.url}{target}", timeout=10)
        assert elapsed < BOUND, f"answered after {elapsed:.1f} s"
        http_error(response, status, "UNAVAILABLE")
        still_serving(crev, healthy_upstream)

    return check


# ------------------------------------------------------------------ unreachable upstreams


def test_connection_refused_is_502(front: Front, healthy_upstream: RawUpstream) -> None:
    crev = front(f"http://127.0.0.1:{closed_port()}")
    response, elapsed = timed_get(f"{crev.url}/v2/bad/tool/manifests/1")
    error = http_error(response, 502, "UNAVAILABLE")
    assert "127.0.0.1" in error["message"]
    assert elapsed < BOUND
    still_serving(crev, healthy_upstream)


def test_dns_failure_is_502(front: Front, healthy_upstream: RawUpstream) -> None:
    crev = front("http://nonexistent.invalid")
    response, elapsed = timed_get(f"{crev.url}/v2/bad/tool/manifests/1")
    error = http_error(response, 502, "UNAVAILABLE")
    assert "nonexistent.invalid" in error["message"]
    assert elapsed < BOUND + 3  # the resolver may take a moment to say no
    still_serving(crev, healthy_upstream)


def test_tls_to_a_plain_http_server_is_an_error(
    front: Front, healthy_upstream: RawUpstream, httpserver: HTTPServer
) -> None:
    crev = front(f"https://127.0.0.1:{httpserver.port}")
    response, elapsed = timed_get(f"{crev.url}/v2/bad/tool/manifests/1")
    http_error(response, (502, 504), "UNAVAILABLE")
    assert elapsed < BOUND
    still_serving(crev, healthy_upstream)


def test_an_untrusted_certificate_is_502(front: Front, healthy_upstream: RawUpstream) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)  # a CA crev never trusts
    with RawUpstream(route=healthy, tls=context) as server:
        crev = front(f"https://{server.host}")
        response, elapsed = timed_get(f"{crev.url}/v2/bad/tool/manifests/1")
        http_error(response, 502, "UNAVAILABLE")
        assert elapsed < BOUND
        assert server.requests == [], "a request crossed an unverified TLS connection"
    still_serving(crev, healthy_upstream)


# ------------------------------------------------------------------ before the headers


def test_a_silent_upstream_is_504(check_fault_is_an_error: FaultCheck) -> None:
    check_fault_is_an_error(lambda request: silent(10), 504)


def test_drip_fed_headers_are_504_in_bounded_time(check_fault_is_an_error: FaultCheck) -> None:
    check_fault_is_an_error(lambda request: drip_head(interval=0.3, total=BOUND + 1.5), 504)


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"hello\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    ],
    ids=["closed", "not-http", "bad-status", "bad-length", "two-lengths", "bad-header-line"],
)
def test_a_broken_answer_is_502(check_fault_is_an_error: FaultCheck, answer: bytes) -> None:
    check_fault_is_an_error(lambda request: raw_answer(answer), 502)


# ------------------------------------------------------------------ mid-body


def body_faults() -> dict[str, Behaviour]:
    half = BLOB[: len(BLOB) // 2]
    chunks = [BLOB[i : i + 10_000] for i in range(0, 100_000, 10_000)]
    return {
        "stall": stall_mid_body(len(BLOB), half, seconds=10),
        "close": cut_mid_body(len(BLOB), half, reset=False),
        "reset": cut_mid_body(len(BLOB), half, reset=True),
        "chunked-cut": chunked_cut(chunks),
    }


@pytest.mark.parametrize("fault", body_faults().keys())
def test_a_body_failing_midway_is_a_failure_for_the_client(
    front: Front, faulty: RawUpstream, healthy_upstream: RawUpstream, fault: str
) -> None:
    faulty.route = lambda request: body_faults()[fault]
    crev = front(faulty.url)
    started = time.monotonic()
    with pytest.raises(httpx.HTTPError) as failure:
        fetch("GET", f"{crev.url}/v2/bad/tool/blobs/{DIGEST}", timeout=15)
    assert time.monotonic() - started < BOUND
    assert not isinstance(failure.value, httpx.TimeoutException), "crev hung instead of cutting"
    still_serving(crev, healthy_upstream)


@pytest.mark.parametrize("fault", body_faults().keys())
def test_a_cut_body_is_never_framed_as_complete(
    front: Front, faulty: RawUpstream, healthy_upstream: RawUpstream, fault: str
) -> None:
    faulty.route = lambda request: body_faults()[fault]
    crev = front(faulty.url)
    started = time.monotonic()
    raw = exchange(port_of(crev), request_bytes(f"/v2/bad/tool/blobs/{DIGEST}"), timeout=10)
    assert time.monotonic() - started < BOUND, "crev held the connection open"
    response = parse(raw)
    assert response.status == 200  # the headers had gone before the fault
    length = response.header("content-length")
    if length is not None:
        body = raw.partition(b"\r\n\r\n")[2]
        assert len(body) < int(length), "a short body arrived with a matching Content-Length"
    else:
        assert response.header("transfer-encoding") == "chunked"
        assert not raw.endswith(b"\r\n0\r\n\r\n"), "a cut chunked body got its last chunk"
    still_serving(crev, healthy_upstream)


def test_a_stalled_upstream_does_not_hold_up_other_requests(
    front: Front, faulty: RawUpstream, healthy_upstream
) -> None:
    faulty.route = lambda request: stall_mid_body(len(BLOB), BLOB[:1000], seconds=10)
    crev = front(faulty.url)
    stalled = threading.Thread(
        target=lambda: exchange(port_of(crev), request_bytes(f"/v2/bad/x/blobs/{DIGEST}"), 10),
        daemon=True,
    )
    stalled.start()
    time.sleep(0.2)
    started = time.monotonic()
    still_serving(crev, healthy_upstream)
    assert time.monotonic() - started < 0.5 * TIMEOUT
    stalled.join(BOUND)
    assert not stalled.is_alive()


def test_a_complete_body_passes_intact(
    front: Front, faulty: RawUpstream, healthy_upstream: RawUpstream
) -> None:
    """The control for the cuts above: the same blob, whole, arrives whole."""
    faulty.route = lambda request: respond(200, BLOB, [("Content-Type", "application/x")])
    crev = front(faulty.url)
    response = fetch("GET", f"{crev.url}/v2/bad/tool/blobs/{DIGEST}", timeout=10)
    assert response.status_code == 200
    assert response.content == BLOB


# ------------------------------------------------------------------ answers that are errors


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"errors":[{"code":"UNAVAILABLE","message":"upstream says"}]}'),
        ("text/html", b"<html><body>Service Unavailable</body></html>"),
    ],
    ids=["json", "html"],
)
def test_upstream_5xx_is_passed_through_as_is(
    front: Front,
    faulty: RawUpstream,
    healthy_upstream: RawUpstream,
    status: int,
    content_type: str,
    body: bytes,
) -> None:
    faulty.route = lambda request: respond(
        status, body, [("Content-Type", content_type), ("Retry-After", "7")]
    )
    crev = front(faulty.url)
    response = fetch("GET", f"{crev.url}/v2/bad/tool/manifests/1", timeout=10)
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-type"] == content_type
    assert response.headers["retry-after"] == "7"
    still_serving(crev, healthy_upstream)


@pytest.mark.parametrize(
    "challenge",
    [
        'Bearer realm="unterminated',
        'Bearer realm="https://auth.example/token" service="reg"',
        'Bearer realm="a\\',
    ],
)
def test_a_malformed_challenge_is_502(check_fault_is_an_error: FaultCheck, challenge: str) -> None:
    check_fault_is_an_error(
        lambda request: respond(401, b"{}", [("WWW-Authenticate", challenge)]),
        502,
    )


@pytest.mark.parametrize(
    ("target", "status", "header"),
    [
        pytest.param(
            "/v2/bad/tool/manifests/1",
            401,
            ("WWW-Authenticate", 'Bearer realm="unterminated'),
            id="malformed-challenge",
        ),
        pytest.param(
            f"/v2/bad/tool/blobs/{DIGEST}",
            307,
            ("Location", "http://[::1/blob"),
            id="malformed-location",
        ),
    ],
)
def test_a_refused_answer_with_a_dripping_body_is_502_in_bounded_time(
    check_fault_is_an_error: FaultCheck,
    target: str,
    status: int,
    header: tuple[str, str],
) -> None:
    check_fault_is_an_error(
        lambda request: drip_body(status, [header], 100_000, 0.3, BOUND + 1.5),
        502,
        target,
    )


@pytest.mark.parametrize(
    "location", ["http://[::1/blob", "http://a/\x01b", "/v2/acme/x/blobs/\x7f"]
)
def test_a_malformed_location_is_502(check_fault_is_an_error: FaultCheck, location: str) -> None:
    check_fault_is_an_error(
        lambda request: respond(307, b"", [("Location", location)]),
        502,
        f"/v2/bad/tool/blobs/{DIGEST}",
    )


def test_a_malformed_link_is_502(check_fault_is_an_error: FaultCheck) -> None:
    body = b'{"name":"acme/tool","tags":["1"]}'
    link = ("Link", '<http://[::1/v2/acme/tool/tags/list?last=1>; rel="next"')
    check_fault_is_an_error(
        lambda request: respond(200, body, [link]),
        502,
        "/v2/bad/tool/tags/list",
    )


def test_a_header_beyond_latin_1_still_gets_an_answer(
    front: Front, faulty: RawUpstream, healthy_upstream
) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"X-Note: price \xe2\x82\xac\r\nConnection: close\r\n\r\n{}"
    )
    faulty.route = lambda request: raw_answer(answer)
    crev = front(faulty.url)
    raw = exchange(port_of(crev), request_bytes("/v2/bad/tool/manifests/1"), timeout=5)
    response = parse(raw)
    if response.status == 200:
        assert response.body == b"{}"
        assert raw.count(b"\xe2\x82\xac") == 1, "the header was not passed through as sent"
    else:
        raw_error(response, 502, "UNAVAILABLE")
    still_serving(crev, healthy_upstream)


# ------------------------------------------------------------------ tag lists (read whole)


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [
        (respond(200, b"<html>not json</html>"), 502),
        (respond(200, b"\xff\xfe\x00"), 502),
        (stall_mid_body(1000, b'{"name":"acme/tool","tags":["1"', seconds=10), 504),
        (cut_mid_body(1000, b'{"name":"acme/tool","tags":["1"', reset=True), 502),
        (chunked_cut([b'{"name":"acme/tool",', b'"tags":["1"']), 502),
    ],
    ids=["html", "binary", "stall", "reset", "chunked-cut"],
)
def test_a_broken_tag_list_is_an_error(
    front: Front,
    faulty: RawUpstream,
    healthy_upstream: RawUpstream,
    behaviour: Behaviour,
    status: int,
) -> None:
    faulty.route = lambda request: behaviour
    crev = front(faulty.url)
    response, elapsed = timed_get(f"{crev.url}/v2/bad/tool/tags/list")
    http_error(response, status, "UNAVAILABLE")
    assert elapsed < BOUND
    still_serving(crev, healthy_upstream)


# ------------------------------------------------------------------ token realms


def challenging(realm: str) -> Callable[[RawRequest], Behaviour]:
    """A registry whose challenges name `realm` and which serves manifests when authorized."""

    def route(request: RawRequest) -> Behaviour:
        if request.path == "/v2/" or request.header("authorization") is None:
            challenge = f'Bearer realm="{realm}",service="reg"'
            return respond(401, b"{}", [("WWW-Authenticate", challenge)])
        return healthy(request)

    return route


@pytest.fixture
def single(start_crev: Callable[..., CrevServer], faulty: RawUpstream) -> Callable[..., CrevServer]:
    """crev with one route, to the faulty upstream."""

    def start(**settings: str) -> CrevServer:
        return start_crev(
            **serving_acme(faulty.host),
            upstream_timeout=f"{TIMEOUT:g}",
            **settings,
        )

    return start


def still_serving_tokens(crev: CrevServer, faulty: RawUpstream) -> None:
    response = fetch(
        "GET", f"{crev.url}/v2/tool/manifests/1", headers={"Authorization": "Bearer t"}
    )
    assert response.status_code == 200
    assert response.content == MANIFEST


@pytest.mark.parametrize("configured", [True, False], ids=["configured-realm", "learned-realm"])
def test_a_token_realm_that_is_down_is_502(
    single: Callable[..., CrevServer], faulty: RawUpstream, configured: bool
) -> None:
    realm = f"http://127.0.0.1:{closed_port()}/token"
    faulty.route = challenging(realm)
    crev = single(token_realm=realm) if configured else single()
    response, elapsed = timed_get(f"{crev.url}/api/token?scope=repository:tool:pull")
    http_error(response, 502, "UNAVAILABLE")
    assert elapsed < BOUND
    still_serving_tokens(crev, faulty)


def test_a_silent_token_realm_is_504(
    single: Callable[..., CrevServer], faulty: RawUpstream
) -> None:
    with RawUpstream(route=lambda request: silent(10)) as realm_server:
        realm = f"{realm_server.url}/token"
        faulty.route = challenging(realm)
        crev = single(token_realm=realm)
        response, elapsed = timed_get(f"{crev.url}/api/token?scope=repository:tool:pull")
        http_error(response, 504, "UNAVAILABLE")
        assert elapsed < BOUND
    still_serving_tokens(crev, faulty)


def test_realm_discovery_from_a_down_upstream_is_502(
    start_crev: Callable[..., CrevServer],
) -> None:
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{closed_port()}"),
        upstream_timeout=f"{TIMEOUT:g}",
    )
    response, elapsed = timed_get(f"{crev.url}/api/token?scope=repository:tool:pull")
    http_error(response, 502, "UNAVAILABLE")
    assert elapsed < BOUND


def test_an_upstream_without_a_realm_is_502_at_the_token_endpoint(
    single: Callable[..., CrevServer], faulty: RawUpstream
) -> None:
    faulty.route = lambda request: respond(200, b"{}")
    crev = single()
    response = fetch("GET", f"{crev.url}/api/token?scope=repository:tool:pull", timeout=10)
    http_error(response, 502, "UNAVAILABLE")


def test_server_side_credentials_with_a_realm_down_are_502(
    single: Callable[..., CrevServer], faulty: RawUpstream
) -> None:
    realm = f"http://127.0.0.1:{closed_port()}/token"
    faulty.route = challenging(realm)
    crev = single(token_realm=realm, upstream_username="robot", upstream_password="secret")
    response, elapsed = timed_get(f"{crev.url}/v2/tool/manifests/1")
    error = http_error(response, 502, "UNAVAILABLE")
    assert "secret" not in error["message"]
    assert elapsed < BOUND
