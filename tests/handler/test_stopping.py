"""`python -m crev` stopped as systemd, docker and Kubernetes stop it (SIGTERM) or as a person
does (Ctrl-C): the requests in flight are answered, for a bounded time, no new connection is
taken, and the stop is said in a line. A real process, and an upstream slower than the stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

from crev.__main__ import DRAIN_SECONDS
from crev.server import PROJECT_ROOT
from rig import free_port

MANIFEST = b'{"schemaVersion":2}'


@dataclass
class SlowUpstream:
    """An upstream that holds each manifest request `seconds` before answering, or until
    released: pytest-httpserver answers one request at a time, and the tests after this one
    share it."""

    seconds: float
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def answer(self, request: WerkzeugRequest) -> WerkzeugResponse:
        self.reached.set()
        self.released.wait(self.seconds)
        return WerkzeugResponse(
            MANIFEST, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        )


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def crev_before(httpserver: HTTPServer, upstream: SlowUpstream) -> Iterator[Running]:
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_handler(upstream.answer)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREV_") and k != "PORT"}
    env.update(
        CREV_REGISTRY_HOST=f"127.0.0.1:{httpserver.port}",
        CREV_REGISTRY_SCHEME="http",
        CREV_REPO_PREFIX="acme",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "crev", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Running(process, port)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{running.url}/api/token", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield running
    finally:
        upstream.released.set()
        if process.poll() is None:
            process.kill()
        process.wait(10)


def pull_in_background(
    running: Running,
) -> tuple[threading.Thread, list[httpx.Response | Exception]]:
    got: list[httpx.Response | Exception] = []

    def pull() -> None:
        try:
            got.append(httpx.get(f"{running.url}/v2/tool/manifests/1", timeout=60))
        except httpx.HTTPError as error:
            got.append(error)

    thread = threading.Thread(target=pull)
    thread.start()
    return thread, got


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_request_in_flight_is_answered_before_crev_stops(
    httpserver: HTTPServer, stop: signal.Signals
) -> None:
    upstream = SlowUpstream(seconds=2.0)
    with crev_before(httpserver, upstream) as running:
        thread, got = pull_in_background(running)
        assert upstream.reached.wait(10)
        running.process.send_signal(stop)
        # No new connection is taken while the request in flight is answered.
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", running.port), timeout=5).close()
        thread.join(30)
        (response,) = got
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200
        assert response.content == MANIFEST
        _, stderr = running.process.communicate(timeout=30)
    assert running.process.returncode == 0
    why = "SIGTERM" if stop == signal.SIGTERM else "Ctrl-C"
    lines = [line.split(" ", 2)[2] for line in stderr.splitlines()]
    assert lines[-3:] == [
        f"stopping ({why}): waiting up to {DRAIN_SECONDS:g} s for 1 request in flight",
        lines[-2],
        "stopped: every request answered",
    ], stderr
    assert lines[-2].startswith("GET /v2/tool/manifests/1 200 upstream=200 ")
    assert "Traceback" not in stderr


def test_an_idle_crev_stops_at_once_on_sigterm_with_a_line(httpserver: HTTPServer) -> None:
    with crev_before(httpserver, SlowUpstream(seconds=0)) as running:
        # The start probe's answer reaches the test a moment before its thread leaves the
        # requests in flight (a loaded machine caught crev still counting it): idle means after.
        time.sleep(0.5)
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        _, stderr = running.process.communicate(timeout=10)
        assert time.monotonic() - started < 2
    assert running.process.returncode == 0
    assert stderr.splitlines()[-1].endswith(" stopping (SIGTERM)"), stderr


def test_a_request_slower_than_the_bound_is_cut_and_said(httpserver: HTTPServer) -> None:
    upstream = SlowUpstream(seconds=DRAIN_SECONDS + 20)
    with crev_before(httpserver, upstream) as running:
        thread, got = pull_in_background(running)
        assert upstream.reached.wait(10)
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        _, stderr = running.process.communicate(timeout=DRAIN_SECONDS + 10)
        took = time.monotonic() - started
        thread.join(30)
    assert DRAIN_SECONDS <= took < DRAIN_SECONDS + 3
    assert running.process.returncode == 0
    assert stderr.splitlines()[-1].endswith(f" stopped: 1 request cut after {DRAIN_SECONDS:g} s"), (
        stderr
    )
    (failure,) = got
    assert isinstance(failure, httpx.HTTPError), failure
