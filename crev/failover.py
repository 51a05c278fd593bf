"""Mirrors: when a route's upstream fails a read, the same read from the route's mirrors, in order.

A mirror is a registry that holds the same images (a project that publishes to ghcr.io and
Docker Hub). It is asked only for reads crev makes with its own upstream tokens (a client's
token is for the primary's realm alone), and only when the primary *fails*: it cannot be
connected to, its TLS handshake fails, it closes or resets the connection without answering,
no answer head arrives within `CREV_FAILOVER_SECONDS`, or it answers 500, 502, 503, 504 or 429.
Every other answer stands: a 401 or 403 is a denial a mirror must not hide, a 404 an unknown
name that is the fallback's business. The realm crev fetches the primary's tokens from is part
of the primary: its failure is the primary's, and the mirror is asked with its own realm.

After a failure the primary's circuit opens (crev/upstream/circuit.py; the upstream keeps it, as
it keeps its tokens, per warm instance): for a cool-down, reads go to the mirrors without
waiting on the primary again. A body cut mid-stream is not failed over: its head went to the
client already, which sees the cut and retries, as without mirrors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from .endpoints import READ_METHODS, Endpoint
from .errors import (
    InvalidNameError,
    UpstreamClosedError,
    UpstreamError,
    UpstreamRealmError,
    UpstreamTimeoutError,
    UpstreamTLSError,
    UpstreamUnreachableError,
)
from .routing import Route
from .upstream import FAILING_STATUSES
from .upstream.connections import head_within

# How the log names a primary that was not asked: its circuit was open.
SKIPPED = "skipped"


class Answer(Protocol):
    """An upstream's answer, as failover sees it: a status, and a body to let go of."""

    @property
    def status(self) -> int: ...

    def release(self) -> None: ...


class Served[A: Answer](NamedTuple):
    """The answer a read got, the route of the upstream that gave it (the route itself or one
    of its mirrors), and when a mirror gave it, how the primary failed, in the log's words."""

    answer: A
    route: Route
    primary_failure: str | None = None


def may_fail_over(route: Route, endpoint: Endpoint, method: str, crev_authorizes: bool) -> bool:
    """Whether this request may reach the route's mirrors at all: a read of content made with
    crev's own tokens, on a route with mirrors."""
    return (
        crev_authorizes
        and bool(route.mirrors)
        and method in READ_METHODS
        and endpoint.kind.facts.falls_back
        and endpoint.name is not None
    )


def mirrors_for(route: Route, endpoint: Endpoint) -> tuple[Route, ...]:
    """The route's mirrors (each a route of its own) that can hold the endpoint's name: not one
    whose namespace would make it longer than a name may be."""
    if endpoint.name is None:
        return ()
    held = []
    for mirror in route.mirror_routes:
        try:
            mirror.to_upstream(endpoint.name)
        except InvalidNameError:
            continue
        held.append(mirror)
    return tuple(held)


def failure_of(error: UpstreamError) -> str | None:
    """How an upstream failed, in the log's words, when it is a failure a mirror may answer
    for; None for one it may not (a malformed answer is the upstream's bug, not an outage)."""
    if isinstance(error, UpstreamRealmError):
        return f"realm-{error.status}"
    if isinstance(error, UpstreamTLSError):
        return "tls"
    if isinstance(error, UpstreamUnreachableError):
        return "unreachable"
    if isinstance(error, UpstreamClosedError):
        return "reset"
    if isinstance(error, UpstreamTimeoutError):
        return "timeout"
    return None


def send_with_failover[A: Answer](
    route: Route,
    mirrors: tuple[Route, ...],
    send: Callable[[Route], A],
    failover_seconds: float,
) -> Served[A]:
    """`send` a read to the route's upstream, waiting at most `failover_seconds` for its answer
    head; when it fails, to each mirror in turn, until one answers with something other than a
    failure. When no mirror does, the primary's own failure stands (its answer, or its error);
    a primary skipped by its open circuit is then asked after all. Without mirrors that can
    hold the name, the primary is asked as on any route."""
    if not mirrors:
        return Served(send(route), route)
    circuit = route.upstream.circuit
    failed: A | None = None
    error: UpstreamError | None = None
    if circuit.should_try():
        try:
            with head_within(failover_seconds):
                answer = send(route)
        except UpstreamError as raised:
            failure = failure_of(raised)
            if failure is None:
                circuit.succeeded()  # it did answer: not an outage
                raise
            circuit.failed()
            error = raised
        else:
            if answer.status not in FAILING_STATUSES:
                circuit.succeeded()
                return Served(answer, route)
            circuit.failed()
            failed, failure = answer, str(answer.status)
    else:
        failure = SKIPPED
    for mirror in mirrors:
        try:
            answer = send(mirror)
        except UpstreamError:
            continue
        if answer.status in FAILING_STATUSES:
            answer.release()
            continue
        if failed is not None:
            failed.release()
        return Served(answer, mirror, failure)
    if failed is not None:
        return Served(failed, route)
    if error is not None:
        raise error
    # Skipped, and no mirror could answer: the primary may be back.
    try:
        with head_within(failover_seconds):
            answer = send(route)
    except UpstreamError as raised:
        if failure_of(raised) is not None:
            circuit.failed()
        raise
    (circuit.failed if answer.status in FAILING_STATUSES else circuit.succeeded)()
    return Served(answer, route)
