"""The circuit per upstream (crev/upstream/circuit.py): skipped after a failure for a cool-down
of at most 30 s, tried again by the first request after it, one trial at a time; on a clock of
the test's own."""

from __future__ import annotations

import threading

import pytest

from crev.upstream.circuit import COOL_DOWN_SECONDS, Circuit, State


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_closed_circuit_asks_the_upstream_every_time(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    assert [circuit.should_try() for _ in range(3)] == [True, True, True]
    circuit.succeeded()
    assert circuit.should_try() and circuit.state is State.CLOSED


def test_after_a_failure_the_upstream_is_skipped_for_the_cool_down(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    assert circuit.state is State.OPEN
    assert not circuit.should_try()
    clock.now += 9.99
    assert not circuit.should_try()


def test_the_first_request_after_the_cool_down_is_the_one_trial(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 10
    assert circuit.should_try()
    assert circuit.state is State.TRIAL
    # The others keep going to the mirrors while the trial is on.
    assert not circuit.should_try()
    assert not circuit.should_try()


def test_a_trial_that_succeeds_closes_the_circuit(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 10
    assert circuit.should_try()
    circuit.succeeded()
    assert circuit.state is State.CLOSED
    assert circuit.should_try() and circuit.should_try()


def test_a_trial_that_fails_opens_the_circuit_for_another_cool_down(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 10
    assert circuit.should_try()
    clock.now += 5  # the trial waited for an answer that never came
    circuit.failed()
    assert circuit.state is State.OPEN
    clock.now += 9.99
    assert not circuit.should_try()
    clock.now += 0.01
    assert circuit.should_try()


def test_a_trial_that_never_reports_is_given_up_after_a_cool_down(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 10
    assert circuit.should_try()
    clock.now += 9.99
    assert not circuit.should_try()
    clock.now += 0.01
    assert circuit.should_try()
    assert not circuit.should_try()


def test_a_late_failure_restarts_the_cool_down(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 4
    # A request that was already asking the upstream when it opened reports late.
    circuit.failed()
    clock.now += 9
    assert not circuit.should_try()
    clock.now += 1
    assert circuit.should_try()


def test_the_default_cool_down_is_at_most_thirty_seconds(clock: Clock) -> None:
    assert 0 < COOL_DOWN_SECONDS <= 30
    circuit = Circuit(clock=clock)
    circuit.failed()
    clock.now += COOL_DOWN_SECONDS - 0.01
    assert not circuit.should_try()
    clock.now += 0.01
    assert circuit.should_try()


@pytest.mark.parametrize("seconds", [0, -1, 30.01, 60])
def test_a_cool_down_beyond_the_bound_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="at most 30 s"):
        Circuit(seconds)


def test_one_trial_among_many_threads(clock: Clock) -> None:
    circuit = Circuit(10, clock)
    circuit.failed()
    clock.now += 10
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def ask() -> None:
        barrier.wait()
        results.append(circuit.should_try())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 15 + [True]
