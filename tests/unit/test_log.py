"""crev's request log (crev/log.py): one line per request, answered or refused, in which nothing
a client sent can forge a line or drive a terminal."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from crev.log import (
    LOGGED_REQUEST_LINE_CHARS,
    configure_logging,
    escaped,
    log_refusal,
    log_response,
)
from crev.messages import FallbackAnswer
from crev.server import PROJECT_ROOT


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="crev")
    return caplog


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/v2/tool/manifests/1", "/v2/tool/manifests/1"),
        ("a\nb\rc", "a\\x0ab\\x0dc"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("tab\there", "tab\\x09here"),
        ("del\x7f c1\x85", "del\\x7f c1\\x85"),
        ("café ✓", "café ✓"),
        # Unprintable, but no control character: shown as it is.
        ("nbsp\u00a0line\u2028end", "nbsp\u00a0line\u2028end"),
        ("c1\x9b and nbsp\u00a0", "c1\\x9b and nbsp\u00a0"),
    ],
)
def test_control_characters_are_shown_escaped(text: str, shown: str) -> None:
    assert escaped(text) == shown


def test_an_answered_request_is_one_line(log: pytest.LogCaptureFixture) -> None:
    log_response("GET", "/v2/tool/manifests/1", 200, 200, 12.345)
    log_response("HEAD", "/v2/", 200, None, 0.44)
    log_response("GET", "/v2/x/blobs/sha256:a", 200, 200, 3.0, "client-gone")
    log_response("GET", "/v2/x/manifests/1", 200, 404, 7.0, fallback=FallbackAnswer("b.io", 200))
    assert log.messages == [
        "GET /v2/tool/manifests/1 200 upstream=200 12.3ms",
        "HEAD /v2/ 200 upstream=- 0.4ms",
        "GET /v2/x/blobs/sha256:a 200 upstream=200 3.0ms client-gone",
        "GET /v2/x/manifests/1 200 upstream=404 fallback=200@b.io 7.0ms",
    ]


def test_what_a_client_sent_cannot_forge_a_line(log: pytest.LogCaptureFixture) -> None:
    log_response("GET\n", "/v2/\nGET /v2/ 200 upstream=200 1.0ms", 404, None, 1.0)
    assert log.messages == [
        "GET\\x0a /v2/\\x0aGET /v2/ 200 upstream=200 1.0ms 404 upstream=- 1.0ms"
    ]


def test_a_refusal_quotes_its_request_line_up_to_a_bound(log: pytest.LogCaptureFixture) -> None:
    log_refusal("GET /v2/\x00 HTTP/1.1", 400, "bad\nrequest")
    log_refusal("", 408, "no request line")
    log_refusal("GET /" + "a" * 1000 + " HTTP/1.1", 414, "too long")
    assert log.messages[:2] == [
        'refused "GET /v2/\\x00 HTTP/1.1" 400 bad\\x0arequest',
        "refused 408 no request line",
    ]
    kept = ("GET /" + "a" * 1000)[:LOGGED_REQUEST_LINE_CHARS]
    assert log.messages[2] == f'refused "{kept}" 414 too long'


def logged_by_a_fresh_process(setup: str) -> str:
    """What a fresh Python process writes to stderr when crev logs one request after `setup`."""
    code = (
        f"{setup}\nfrom crev.log import log_response\nlog_response('GET', '/v2/', 200, None, 1.0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stderr


def test_a_process_that_configured_no_logging_still_shows_request_lines() -> None:
    # `vercel dev` runs functions under Vercel's runtime without the platform, which then sets
    # up no logging: the lines must still reach its terminal.
    lines = logged_by_a_fresh_process("").splitlines()
    assert len(lines) == 1 and lines[0].endswith(" GET /v2/ 200 upstream=- 1.0ms"), lines


def test_a_process_that_configured_logging_gets_each_line_once() -> None:
    # As Vercel's runtime does in production: the root logger's handler alone writes it.
    setup = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stderr, format='root %(message)s', level=logging.INFO)"
    )
    assert logged_by_a_fresh_process(setup).splitlines() == ["root GET /v2/ 200 upstream=- 1.0ms"]


def test_why_crev_failed_a_request_ends_its_line(log: pytest.LogCaptureFixture) -> None:
    log_response("GET", "/v2/", 502, None, 27.9, failure="upstream a.io is unreachable")
    log_response("GET", "/v2/", 504, None, 1.0, "client-gone", failure='said "x"\nGET / 200')
    assert log.messages == [
        'GET /v2/ 502 upstream=- 27.9ms error="upstream a.io is unreachable"',
        'GET /v2/ 504 upstream=- 1.0ms client-gone error="said \\"x\\"\\x0aGET / 200"',
    ]


def test_the_line_s_time_is_logging_s_own_each_second_formatted_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crev_log = logging.getLogger("crev")
    monkeypatch.setattr(crev_log, "handlers", [])
    configure_logging()
    [handler] = crev_log.handlers
    assert handler.formatter is not None
    standard = logging.Formatter("%(asctime)s %(message)s")
    formatted: list[str] = []
    for created in (784111777.25, 784111777.999, 784111778.0, 784111777.5, 1.5e9 + 0.125):
        record = logging.makeLogRecord({"msg": "GET /v2/ 200", "created": created})
        record.msecs = (created - int(created)) * 1000
        assert handler.formatter.format(record) == standard.format(record)
        formatted.append(handler.formatter.format(record).rpartition(" GET")[0])
    assert len(set(formatted)) == 5
    strftime_calls: list[object] = []
    real_strftime = time.strftime

    def counted(*args: object) -> str:
        strftime_calls.append(args)
        return real_strftime(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(time, "strftime", counted)
    for msecs in (0.0, 10.0, 999.0):
        record = logging.makeLogRecord({"msg": "x", "created": 1.5e9 + 0.125})
        record.msecs = msecs
        handler.formatter.format(record)
    assert strftime_calls == []
