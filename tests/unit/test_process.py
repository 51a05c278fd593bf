"""The process (crev/process.py): its settings read from the environment once per distinct set
of values, the warnings about variables nothing reads given once, and the `Date` of the
current second."""

from __future__ import annotations

import logging
import os

import pytest

from crev.config import ConfigError
from crev.names import Namespace
from crev.process import Process
from crev.upstream.auth import StaticToken
from crev.urls import Origin
from tests.unit.test_config import SINGLE_VARIABLES


def test_a_process_s_settings_reads_the_environment_and_caches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = Process()
    for key in [*SINGLE_VARIABLES, "CREV_ROUTES"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CREV_REGISTRY_HOST", "ghcr.io")
    monkeypatch.setenv("CREV_REPO_PREFIX", "unit-test-acme")
    first = process.settings()
    assert first.routes.default.upstream.origin == Origin("https", "ghcr.io")
    assert first.routes.default.namespace == Namespace("unit-test-acme")
    assert process.settings() is first
    monkeypatch.setenv("CREV_REPO_PREFIX", "unit-test-other")
    second = process.settings()
    assert second.routes.default.namespace == Namespace("unit-test-other")
    monkeypatch.setenv("CREV_REPO_PREFIX", "unit-test-acme")
    assert process.settings() is first


def test_a_process_s_own_environment_is_checked_without_its_mapping_look_ups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `os.environ.get` of an unset variable raises and catches a KeyError inside: two dozen
    # of them were a visible part of every request's CPU. A change is still noticed.
    process = Process()
    for key in [*SINGLE_VARIABLES, "CREV_ROUTES"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CREV_REGISTRY_HOST", "ghcr.io")
    first = process.settings()
    looked_up: list[str] = []
    environ_type = type(os.environ)
    original = environ_type.__getitem__

    def counted(self: os._Environ[str], key: str) -> str:
        looked_up.append(key)
        return original(self, key)

    monkeypatch.setattr(environ_type, "__getitem__", counted)
    for _ in range(3):
        assert process.settings() is first
    assert looked_up == []
    monkeypatch.setenv("CREV_REPO_PREFIX", "unit-test-acme")
    assert process.settings().routes.default.namespace == Namespace("unit-test-acme")
    monkeypatch.delenv("CREV_REPO_PREFIX")
    assert process.settings() is first


def test_a_process_s_settings_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    process = Process()
    monkeypatch.delenv("CREV_ROUTES", raising=False)
    monkeypatch.setenv("CREV_REGISTRY_HOST", "https://unit-test.example")
    with pytest.raises(ConfigError, match="CREV_REGISTRY_HOST"):
        process.settings()


def test_a_process_s_settings_follow_every_variable_they_read_and_no_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = Process()
    for key in [*SINGLE_VARIABLES, "CREV_ROUTES"]:
        monkeypatch.delenv(key, raising=False)
    # A route's credentials live in variables whose names come from another variable.
    monkeypatch.setenv("CREV_ROUTES", "=ghcr.io/unit-test;credentials=UNIT_PRIV")
    monkeypatch.setenv("CREV_UNIT_PRIV_TOKEN", "first-token")
    first = process.settings()
    assert first.routes.default.upstream.auth == StaticToken("first-token")
    monkeypatch.setenv("UNIT_TEST_UNRELATED", "x")
    assert process.settings() is first
    monkeypatch.setenv("CREV_UNIT_PRIV_TOKEN", "second-token")
    assert process.settings().routes.default.upstream.auth == StaticToken("second-token")


def test_a_process_s_settings_log_a_variable_no_setting_reads_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    process = Process()
    for key in [*SINGLE_VARIABLES, "CREV_ROUTES"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CREV_REGISTRY_HOST", "ghcr.io")
    monkeypatch.setenv("CREV_REPO_PREFIXX", "unit-test-typo")
    caplog.set_level(logging.WARNING, logger="crev")
    process.settings()
    monkeypatch.setenv("CREV_REPO_PREFIX", "unit-test-now-a-new-configuration")
    process.settings()
    assert [record.getMessage() for record in caplog.records] == [
        "configuration: CREV_REPO_PREFIXX is set, but crev has no such setting: it is ignored"
        " (did you mean CREV_REPO_PREFIX?)"
    ]


def test_a_process_s_upstreams_keep_what_they_learn_between_requests() -> None:
    process = Process({"CREV_REGISTRY_HOST": "ghcr.io"})
    upstream = process.settings().routes.default.upstream
    assert process.settings().routes.default.upstream is upstream
    # Another process (another function's, or a test's) learns on its own.
    assert Process({"CREV_REGISTRY_HOST": "ghcr.io"}).settings().routes.default.upstream is not (
        upstream
    )
    process.forget()
    assert process.settings().routes.default.upstream is not upstream


def test_the_date_is_the_current_second_s_on_the_process_s_clock() -> None:
    now = [784111777.0]
    process = Process({}, wall_clock=lambda: now[0])
    assert process.http_date() == "Sun, 06 Nov 1994 08:49:37 GMT"
    now[0] += 0.5
    assert process.http_date() == "Sun, 06 Nov 1994 08:49:37 GMT"
    now[0] += 1
    assert process.http_date() == "Sun, 06 Nov 1994 08:49:38 GMT"
