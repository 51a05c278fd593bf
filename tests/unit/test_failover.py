"""Failover to a route's mirrors (crev/failover.py): which failures of the primary a mirror
answers for, in what order mirrors are asked, what the circuit remembers, and which answers
stand; over answers of the test's own, with no sockets."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from crev.endpoints import Endpoint, Kind
from crev.errors import (
    UpstreamClosedError,
    UpstreamCutError,
    UpstreamError,
    UpstreamRealmError,
    UpstreamTimeoutError,
    UpstreamTLSError,
    UpstreamUnreachableError,
)
from crev.failover import (
    SKIPPED,
    Served,
    failure_of,
    may_fail_over,
    mirrors_for,
    send_with_failover,
)
from crev.names import Digest, Namespace, RepositoryName, Tag
from crev.routing import Route
from crev.upstream import Upstream
from crev.upstream.auth import AnonymousToken
from crev.upstream.circuit import State
from crev.upstream.connections import _head
from crev.urls import Origin

DIGEST = Digest.parse("sha256:" + "a" * 64)


def upstream(host: str, clock: Callable[[], float] = time.monotonic) -> Upstream:
    return Upstream(Origin("https", host), Namespace("acme"), AnonymousToken(), clock=clock)


def route_with_mirrors(clock: Callable[[], float] = time.monotonic) -> Route:
    """ghcr.io, with Docker Hub and then quay.io as its mirrors; circuits on `clock`."""
    mirrors = (upstream("registry-1.docker.io", clock), upstream("quay.io", clock))
    return Route("", (upstream("ghcr.io", clock),), public=True, mirrors=mirrors)


ROUTE = route_with_mirrors()


class FakeAnswer:
    def __init__(self, status: int) -> None:
        self.status = status
        self.released = False

    def release(self) -> None:
        self.released = True


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


Outcome = int | UpstreamError


class Upstreams:
    """What each upstream does, by host, and who was asked (with the head wait in force)."""

    def __init__(self, **outcomes: Outcome | list[Outcome]) -> None:
        # Hosts as keywords: `registry_1_docker_io` is registry-1.docker.io.
        self.outcomes = {
            host.replace("registry_1", "registry-1").replace("_", "."): outcome
            for host, outcome in outcomes.items()
        }
        self.asked: list[tuple[str, float | None]] = []
        self.answers: list[FakeAnswer] = []

    def send(self, route: Route) -> FakeAnswer:
        host = route.upstream.host
        self.asked.append((host, getattr(_head, "seconds", None)))
        outcome = self.outcomes[host]
        if isinstance(outcome, list):
            outcome = outcome.pop(0)
        if isinstance(outcome, UpstreamError):
            raise outcome
        answer = FakeAnswer(outcome)
        self.answers.append(answer)
        return answer

    @property
    def hosts(self) -> list[str]:
        return [host for host, _ in self.asked]


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Routes:
    """The route of a test, on its clock, and its two mirrors as routes."""

    def __init__(self, clock: Clock) -> None:
        self.route = route_with_mirrors(clock)
        self.mirror, self.second = self.route.mirror_routes


@pytest.fixture
def routes(clock: Clock) -> Routes:
    return Routes(clock)


def serve(upstreams: Upstreams, route: Route) -> Served[FakeAnswer]:
    send: Callable[[Route], FakeAnswer] = upstreams.send
    return send_with_failover(route, route.mirror_routes, send, 5.0)


def unreachable() -> UpstreamError:
    return UpstreamUnreachableError("upstream ghcr.io is unreachable: refused")


def test_a_healthy_primary_is_the_only_one_asked(routes: Routes) -> None:
    upstreams = Upstreams(ghcr_io=200)
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route, served.primary_failure) == (200, routes.route, None)
    # The primary waits no longer than CREV_FAILOVER_routes.secondS for its answer head.
    assert upstreams.asked == [("ghcr.io", 5.0)]


@pytest.mark.parametrize("status", [401, 403, 404, 400, 307, 206])
def test_the_primarys_other_answers_stand(routes: Routes, status: int) -> None:
    upstreams = Upstreams(ghcr_io=status)
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route) == (status, routes.route)
    assert upstreams.hosts == ["ghcr.io"]
    assert routes.route.upstream.circuit.state is State.CLOSED


@pytest.mark.parametrize(
    ("failure", "shown"),
    [
        (unreachable(), "unreachable"),
        (UpstreamTLSError("upstream ghcr.io is unreachable: certificate"), "tls"),
        (UpstreamClosedError("upstream ghcr.io closed the connection"), "reset"),
        (UpstreamTimeoutError("upstream ghcr.io did not answer within 5 s"), "timeout"),
        (
            UpstreamRealmError("the upstream token realm ghcr.io failed (status 503)", 503),
            "realm-503",
        ),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
        (429, "429"),
    ],
)
def test_a_failing_primary_is_answered_for_by_its_first_mirror(
    routes: Routes, failure: Outcome, shown: str
) -> None:
    upstreams = Upstreams(ghcr_io=failure, registry_1_docker_io=200)
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route, served.primary_failure) == (
        200,
        routes.mirror,
        shown,
    )
    # The mirror is waited on for as long as CREV_UPSTREAM_TIMEOUT allows.
    assert upstreams.asked == [("ghcr.io", 5.0), ("registry-1.docker.io", None)]
    # The primary's failing answer lets its connection go.
    assert all(answer.released for answer in upstreams.answers if answer.status == failure)


def test_a_malformed_answer_or_a_cut_body_is_no_outage(routes: Routes) -> None:
    for error in (UpstreamError("upstream ghcr.io sent a malformed answer"), UpstreamCutError("x")):
        upstreams = Upstreams(ghcr_io=error, registry_1_docker_io=200)
        with pytest.raises(type(error)):
            serve(upstreams, routes.route)
        assert upstreams.hosts == ["ghcr.io"]


def test_mirrors_are_asked_in_order_past_the_ones_that_fail(routes: Routes) -> None:
    upstreams = Upstreams(ghcr_io=503, registry_1_docker_io=unreachable(), quay_io=200)
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route, served.primary_failure) == (
        200,
        routes.second,
        "503",
    )
    assert upstreams.hosts == ["ghcr.io", "registry-1.docker.io", "quay.io"]


def test_a_mirrors_404_is_its_answer(routes: Routes) -> None:
    # The primary failed; the mirror does not know the name: that is for the fallback to see.
    upstreams = Upstreams(ghcr_io=503, registry_1_docker_io=404, quay_io=200)
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route, served.primary_failure) == (
        404,
        routes.mirror,
        "503",
    )


def test_when_every_mirror_fails_the_primarys_answer_stands(routes: Routes) -> None:
    upstreams = Upstreams(ghcr_io=429, registry_1_docker_io=503, quay_io=unreachable())
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route, served.primary_failure) == (429, routes.route, None)
    assert not served.answer.released
    assert [a.released for a in upstreams.answers] == [False, True]


def test_when_every_mirror_fails_the_primarys_error_stands(routes: Routes) -> None:
    failure = unreachable()
    upstreams = Upstreams(ghcr_io=failure, registry_1_docker_io=503, quay_io=504)
    with pytest.raises(UpstreamUnreachableError) as caught:
        serve(upstreams, routes.route)
    assert caught.value is failure


def test_an_open_circuit_skips_the_primary_until_the_cool_down_ends(
    routes: Routes, clock: Clock
) -> None:
    upstreams = Upstreams(
        ghcr_io=[UpstreamTimeoutError("no answer"), 200], registry_1_docker_io=200
    )
    assert serve(upstreams, routes.route).primary_failure == "timeout"
    clock.now += 29
    served = serve(upstreams, routes.route)
    assert (served.route, served.primary_failure) == (routes.mirror, SKIPPED)
    assert upstreams.hosts == ["ghcr.io", "registry-1.docker.io", "registry-1.docker.io"]
    clock.now += 1
    # The first request after the cool-down tries the primary, which serves again.
    served = serve(upstreams, routes.route)
    assert (served.route, served.primary_failure) == (routes.route, None)
    assert routes.route.upstream.circuit.state is State.CLOSED


def test_a_skipped_primary_is_asked_after_all_when_no_mirror_answers(
    routes: Routes,
) -> None:
    upstreams = Upstreams(ghcr_io=[503, 200], registry_1_docker_io=503, quay_io=503)
    assert serve(upstreams, routes.route).answer.status == 503
    served = serve(upstreams, routes.route)
    assert (served.answer.status, served.route) == (200, routes.route)
    assert upstreams.hosts == [
        *("ghcr.io", "registry-1.docker.io", "quay.io"),
        *("registry-1.docker.io", "quay.io", "ghcr.io"),
    ]
    assert upstreams.asked[-1] == ("ghcr.io", 5.0)
    assert routes.route.upstream.circuit.state is State.CLOSED


def test_each_primary_has_its_own_circuit(routes: Routes) -> None:
    other = routes.route._replace(upstreams=(upstream("other.io"),))
    upstreams = Upstreams(ghcr_io=503, other_io=200, registry_1_docker_io=200)
    serve(upstreams, routes.route)
    assert serve(upstreams, other).route == other


def test_failure_of_names_only_outages() -> None:
    assert failure_of(UpstreamError("malformed")) is None
    assert failure_of(UpstreamCutError("cut")) is None
    assert failure_of(UpstreamRealmError("x", 429)) == "realm-429"


TOOL = RepositoryName("tool")


@pytest.mark.parametrize(
    ("endpoint", "method", "crev_authorizes", "route", "expected"),
    [
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "GET", True, ROUTE, True),
        (Endpoint(Kind.MANIFEST, TOOL, DIGEST), "HEAD", True, ROUTE, True),
        (Endpoint(Kind.BLOB, TOOL, DIGEST), "GET", True, ROUTE, True),
        (Endpoint(Kind.TAGS, TOOL), "GET", True, ROUTE, True),
        (Endpoint(Kind.REFERRERS, TOOL, DIGEST), "GET", True, ROUTE, True),
        # Writes never fail over, nor does `/v2/` or an upload's status.
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "PUT", True, ROUTE, False),
        (Endpoint(Kind.BLOB, TOOL, DIGEST), "DELETE", True, ROUTE, False),
        (Endpoint(Kind.UPLOAD_START, TOOL), "POST", True, ROUTE, False),
        (Endpoint(Kind.BASE), "GET", True, ROUTE, False),
        # A read made with the client's own login is for the primary's realm alone.
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "GET", False, ROUTE, False),
        (Endpoint(Kind.MANIFEST, TOOL, Tag("1")), "GET", True, ROUTE._replace(mirrors=()), False),
    ],
)
def test_what_may_fail_over(
    endpoint: Endpoint, method: str, crev_authorizes: bool, route: Route, expected: bool
) -> None:
    assert may_fail_over(route, endpoint, method, crev_authorizes) is expected


def test_a_mirror_whose_namespace_makes_the_name_too_long_is_not_asked() -> None:
    long_prefix = Upstream(Origin("https", "quay.io"), Namespace("x" * 200), AnonymousToken())
    route = ROUTE._replace(mirrors=(long_prefix, ROUTE.mirrors[0]))
    held, hub = route.mirror_routes
    name = RepositoryName("a" * 60)
    assert mirrors_for(route, Endpoint(Kind.MANIFEST, name, Tag("1"))) == (hub,)
    assert mirrors_for(route, Endpoint(Kind.MANIFEST, TOOL, Tag("1"))) == (held, hub)
