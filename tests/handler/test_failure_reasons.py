"""Why crev failed a request, where a person looks: the 502/504's message names the cause and the
bound that fired, and the request's one log line carries it (clients show only "502 Bad
Gateway"), without credentials. Real sockets: a plain-HTTP server spoken to with https, a TCP
listener that accepts and never answers, a token realm that refuses crev's credentials."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pytest_httpserver import HTTPServer

import crev.upstream.connections
from rig.crev_process import serving_acme
from tests.support.crev_server import CrevServer

PLAIN_HTTP_HINT = "is the upstream plain HTTP? set CREV_REGISTRY_SCHEME=http"


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="crev")
    return caplog


def logged_line(log: pytest.LogCaptureFixture, start: str) -> str:
    """The one line logged for a request, once its answer has gone out."""
    deadline = time.monotonic() + 5
    while True:
        lines = [r.getMessage() for r in log.records if r.name == "crev"]
        matching = [line for line in lines if line.startswith(start)]
        if matching or time.monotonic() > deadline:
            assert len(matching) == 1, lines
            return matching[0]
        time.sleep(0.02)


def message_of(response: httpx.Response) -> str:
    (error,) = response.json()["errors"]
    assert error["code"] == "UNAVAILABLE"
    return str(error["message"])


class _PlainHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def plain_http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PlainHandler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def never_answers() -> Iterator[str]:
    """A TCP listener that accepts every connection and never sends a byte: a TLS handshake
    with it never completes."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def test_an_https_request_to_a_plain_http_upstream_says_to_set_the_scheme(
    start_crev: Callable[..., CrevServer], plain_http_server: str, log: pytest.LogCaptureFixture
) -> None:
    crev = start_crev(**serving_acme(plain_http_server, scheme="https"))
    response = httpx.get(f"{crev.url}/v2/", timeout=30)
    assert response.status_code == 502
    message = message_of(response)
    assert message.startswith(f"upstream {plain_http_server} did not answer https in TLS")
    assert "WRONG_VERSION_NUMBER" in message
    assert PLAIN_HTTP_HINT in message
    line = logged_line(log, "GET /v2/ 502 upstream=- ")
    assert line.endswith(f'ms error="{message}"'), line


def wait_for_connect_bound(
    start_crev: Callable[..., CrevServer], never_answers: str, log: pytest.LogCaptureFixture
) -> tuple[httpx.Response, float, str]:
    # CREV_UPSTREAM_TIMEOUT is left at its default (30 s): the connect bound is what fires.
    crev = start_crev(**serving_acme(never_answers, scheme="https"))
    started = time.monotonic()
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1", timeout=60)
    took = time.monotonic() - started
    return response, took, logged_line(log, "GET /v2/tool/manifests/1 504 upstream=- ")


def test_a_tls_handshake_that_never_completes_names_the_connect_bound(
    start_crev: Callable[..., CrevServer],
    never_answers: str,
    log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(crev.upstream.connections, "CONNECT_SECONDS", 1.0)
    response, took, line = wait_for_connect_bound(start_crev, never_answers, log)
    assert response.status_code == 504
    assert 1.0 <= took < 5.0
    message = message_of(response)
    assert message == (
        f"upstream {never_answers} did not complete a connection (TCP and TLS handshakes) "
        "within 1 s"
    )
    assert f'error="{message}"' in line


def test_the_connect_bound_is_10_s_below_the_default_timeout(
    start_crev: Callable[..., CrevServer], never_answers: str, log: pytest.LogCaptureFixture
) -> None:
    response, took, line = wait_for_connect_bound(start_crev, never_answers, log)
    assert response.status_code == 504
    assert 10.0 <= took < 20.0
    assert message_of(response).endswith("within 10 s")
    assert "30 s" not in line and line.endswith('within 10 s"')


def test_a_realm_not_accepting_crev_s_credentials_is_logged_without_them(
    start_crev: Callable[..., CrevServer], httpserver: HTTPServer, log: pytest.LogCaptureFixture
) -> None:
    realm = httpserver.url_for("/token")
    challenge = {"WWW-Authenticate": f'Bearer realm="{realm}",service="r"'}
    # crev learns the realm from the upstream's challenge on /v2/.
    httpserver.expect_request("/v2/").respond_with_data("{}", status=401, headers=challenge)
    httpserver.expect_request("/v2/acme/tool/manifests/1").respond_with_data(
        "{}", status=401, headers=challenge
    )
    httpserver.expect_request("/token").respond_with_data("{}", status=401)
    crev = start_crev(
        **serving_acme(f"127.0.0.1:{httpserver.port}"),
        upstream_username="robot",
        upstream_password="s3cret-password",
    )
    response = httpx.get(f"{crev.url}/v2/tool/manifests/1", timeout=30)
    assert response.status_code == 502
    line = logged_line(log, "GET /v2/tool/manifests/1 502 upstream=- ")
    message = "the upstream token realm did not accept crev's credentials (status 401)"
    assert f'error="{message}"' in line
    assert "s3cret" not in line and "czNjcmV0" not in line
