"""Failover to a route's mirrors (crev/failover.py): which failures of the primary a mirror
answers for, in what order mirrors are asked, what the circuit remembers, and which answers
stand; over answers of the test's own, with no sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crev.circuit import Circuits, State
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
from crev.upstream import _head
from crev.urls import Origin

DIGEST = Digest.parse("sha256:" + "a" * 64)
MIRROR = Route("", Origin("https", "registry-1.docker.io"), Namespace("acme"), public=True)
SECOND = Route("", Origin("https", "quay.io"), Namespace("acme"), public=True)
ROUTE = Route(
    "", Origin("https", "ghcr.io"), Namespace("acme"), public=True, mirrors=(MIRROR, SECOND)
)


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


@pytest.fixture
def circuits(clock: Clock) -> Circuits:
    return Circuits(30, clock)


def serve(upstreams: Upstreams, circuits: Circuits, route: Route = ROUTE) -> Served[FakeAnswer]:
    send: Callable[[Route], FakeAnswer] = upstreams.send
    return send_with_failover(route, route.mirrors, send, circuits, 5.0)


def unreachable() -> UpstreamError:
    return UpstreamUnreachableError("upstream ghcr.io is unreachable: refused")


def test_a_healthy_primary_is_the_only_one_asked(circuits: Circuits) -> None:
    upstreams = Upstreams(ghcr_io=200)
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route, served.primary_failure) == (200, ROUTE, None)
    # The primary waits no longer than CREV_FAILOVER_SECONDS for its answer head.
    assert upstreams.asked == [("ghcr.io", 5.0)]


@pytest.mark.parametrize("status", [401, 403, 404, 400, 307, 206])
def test_the_primarys_other_answers_stand(circuits: Circuits, status: int) -> None:
    upstreams = Upstreams(ghcr_io=status)
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route) == (status, ROUTE)
    assert upstreams.hosts == ["ghcr.io"]
    assert circuits.of(ROUTE.upstream).state is State.CLOSED


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
    circuits: Circuits, failure: Outcome, shown: str
) -> None:
    upstreams = Upstreams(ghcr_io=failure, registry_1_docker_io=200)
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route, served.primary_failure) == (200, MIRROR, shown)
    # The mirror is waited on for as long as CREV_UPSTREAM_TIMEOUT allows.
    assert upstreams.asked == [("ghcr.io", 5.0), ("registry-1.docker.io", None)]
    # The primary's failing answer lets its connection go.
    assert all(answer.released for answer in upstreams.answers if answer.status == failure)


def test_a_malformed_answer_or_a_cut_body_is_no_outage(circuits: Circuits) -> None:
    for error in (UpstreamError("upstream ghcr.io sent a malformed answer"), UpstreamCutError("x")):
        upstreams = Upstreams(ghcr_io=error, registry_1_docker_io=200)
        with pytest.raises(type(error)):
            serve(upstreams, circuits)
        assert upstreams.hosts == ["ghcr.io"]


def test_mirrors_are_asked_in_order_past_the_ones_that_fail(circuits: Circuits) -> None:
    upstreams = Upstreams(ghcr_io=503, registry_1_docker_io=unreachable(), quay_io=200)
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route, served.primary_failure) == (200, SECOND, "503")
    assert upstreams.hosts == ["ghcr.io", "registry-1.docker.io", "quay.io"]


def test_a_mirrors_404_is_its_answer(circuits: Circuits) -> None:
    # The primary failed; the mirror does not know the name: that is for the fallback to see.
    upstreams = Upstreams(ghcr_io=503, registry_1_docker_io=404, quay_io=200)
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route, served.primary_failure) == (404, MIRROR, "503")


def test_when_every_mirror_fails_the_primarys_answer_stands(circuits: Circuits) -> None:
    upstreams = Upstreams(ghcr_io=429, registry_1_docker_io=503, quay_io=unreachable())
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route, served.primary_failure) == (429, ROUTE, None)
    assert not served.answer.released
    assert [a.released for a in upstreams.answers] == [False, True]


def test_when_every_mirror_fails_the_primarys_error_stands(circuits: Circuits) -> None:
    failure = unreachable()
    upstreams = Upstreams(ghcr_io=failure, registry_1_docker_io=503, quay_io=504)
    with pytest.raises(UpstreamUnreachableError) as caught:
        serve(upstreams, circuits)
    assert caught.value is failure


def test_an_open_circuit_skips_the_primary_until_the_cool_down_ends(
    circuits: Circuits, clock: Clock
) -> None:
    upstreams = Upstreams(
        ghcr_io=[UpstreamTimeoutError("no answer"), 200], registry_1_docker_io=200
    )
    assert serve(upstreams, circuits).primary_failure == "timeout"
    clock.now += 29
    served = serve(upstreams, circuits)
    assert (served.route, served.primary_failure) == (MIRROR, SKIPPED)
    assert upstreams.hosts == ["ghcr.io", "registry-1.docker.io", "registry-1.docker.io"]
    clock.now += 1
    # The first request after the cool-down tries the primary, which serves again.
    served = serve(upstreams, circuits)
    assert (served.route, served.primary_failure) == (ROUTE, None)
    assert circuits.of(ROUTE.upstream).state is State.CLOSED


def test_a_skipped_primary_is_asked_after_all_when_no_mirror_answers(
    circuits: Circuits,
) -> None:
    upstreams = Upstreams(ghcr_io=[503, 200], registry_1_docker_io=503, quay_io=503)
    assert serve(upstreams, circuits).answer.status == 503
    served = serve(upstreams, circuits)
    assert (served.answer.status, served.route) == (200, ROUTE)
    assert upstreams.hosts == [
        *("ghcr.io", "registry-1.docker.io", "quay.io"),
        *("registry-1.docker.io", "quay.io", "ghcr.io"),
    ]
    assert upstreams.asked[-1] == ("ghcr.io", 5.0)
    assert circuits.of(ROUTE.upstream).state is State.CLOSED


def test_each_primary_has_its_own_circuit(circuits: Circuits) -> None:
    other = ROUTE._replace(upstream=Origin("https", "other.io"))
    upstreams = Upstreams(ghcr_io=503, other_io=200, registry_1_docker_io=200)
    serve(upstreams, circuits)
    assert serve(upstreams, circuits, other).route == other


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
    long_prefix = Route("", Origin("https", "quay.io"), Namespace("x" * 200), public=True)
    route = ROUTE._replace(mirrors=(long_prefix, MIRROR))
    name = RepositoryName("a" * 60)
    assert mirrors_for(route, Endpoint(Kind.MANIFEST, name, Tag("1"))) == (MIRROR,)
    assert mirrors_for(route, Endpoint(Kind.MANIFEST, TOOL, Tag("1"))) == (long_prefix, MIRROR)
