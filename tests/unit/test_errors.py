"""The error vocabulary (crev/errors.py): one base, and the registry error each error is
answered as."""

from __future__ import annotations

import json

import pytest

from crev import errors
from crev.errors import (
    ConfigError,
    CrevError,
    ErrorCode,
    IncompleteBodyError,
    InvalidDigestError,
    InvalidNameError,
    InvalidReferenceError,
    InvalidScopeError,
    MalformedHeaderError,
    NameUnknownError,
    RegistryError,
    UpstreamCutError,
    UpstreamError,
    UpstreamTimeoutError,
    method_not_allowed,
    not_served,
    registry_error,
)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidNameError("bad name", {"name": "A"}), 400, ErrorCode.NAME_INVALID),
        (InvalidDigestError("bad digest", {"digest": "x"}), 400, ErrorCode.DIGEST_INVALID),
        (InvalidReferenceError("no such", {"reference": "-"}), 404, ErrorCode.MANIFEST_UNKNOWN),
        (InvalidScopeError("bad scope"), 400, ErrorCode.UNSUPPORTED),
        (NameUnknownError("not served", {"name": "x"}), 404, ErrorCode.NAME_UNKNOWN),
        (UpstreamError("upstream down"), 502, ErrorCode.UNAVAILABLE),
        (UpstreamTimeoutError("upstream slow"), 504, ErrorCode.UNAVAILABLE),
        (UpstreamCutError("upstream cut"), 502, ErrorCode.UNAVAILABLE),
        (IncompleteBodyError("the body stopped"), 408, ErrorCode.SIZE_INVALID),
    ],
)
def test_each_domain_error_is_answered_with_its_status_and_code(
    error: CrevError, status: int, code: ErrorCode
) -> None:
    answer = registry_error(error)
    assert (answer.status, answer.code) == (status, code)
    # The message and detail are the domain error's own: written for the client already.
    assert answer.message == error.message
    assert answer.detail == error.detail


def test_a_refusal_is_answered_with_its_code_s_status() -> None:
    assert RegistryError(ErrorCode.DENIED, "no").status == 403
    assert RegistryError(ErrorCode.NAME_UNKNOWN, "no").status == 404
    assert RegistryError(ErrorCode.UNSUPPORTED, "no").status == 400
    # Where HTTP asks for a status of its own.
    assert RegistryError(ErrorCode.SIZE_INVALID, "too large", status=413).status == 413
    assert (not_served("no such path").status, not_served("no").code) == (
        404,
        ErrorCode.UNSUPPORTED,
    )


def test_every_code_knows_its_status() -> None:
    for code in ErrorCode:
        assert 400 <= code.status < 600, code


def test_a_registry_error_is_answered_as_it_is() -> None:
    refusal = method_not_allowed("PUT is not served", "GET, HEAD")
    assert isinstance(refusal, RegistryError)
    assert registry_error(refusal) is refusal
    assert (refusal.status, refusal.code) == (405, ErrorCode.UNSUPPORTED)
    assert refusal.headers == [("Allow", "GET, HEAD")]


def test_what_has_no_answer_of_its_own_is_crevs_fault() -> None:
    misconfigured = registry_error(ConfigError("CREV_ROUTES='x': expected vanity-prefix=host"))
    assert (misconfigured.status, misconfigured.code) == (500, ErrorCode.UNKNOWN)
    assert (
        misconfigured.message
        == "crev is misconfigured: CREV_ROUTES='x': expected vanity-prefix=host"
    )
    unread = registry_error(MalformedHeaderError("expected a token at position 0"))
    assert (unread.status, unread.code) == (500, ErrorCode.UNKNOWN)


def test_every_error_crev_raises_has_one_base() -> None:
    raised = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    ]
    assert len(raised) == 17
    assert all(issubclass(kind, CrevError) for kind in raised)
    # Grammar errors are ValueErrors too, as a parse failure is in Python.
    for kind in (InvalidNameError, InvalidDigestError, InvalidScopeError, MalformedHeaderError):
        assert issubclass(kind, ValueError)


def test_how_an_upstream_failed_is_answered_as_any_upstream_failure() -> None:
    for error in (
        errors.UpstreamUnreachableError("upstream ghcr.io is unreachable: refused"),
        errors.UpstreamTLSError("upstream ghcr.io is unreachable: certificate verify failed"),
        errors.UpstreamClosedError("upstream ghcr.io closed the connection without answering"),
        errors.UpstreamRealmError("the upstream token realm ghcr.io failed (status 503)", 503),
    ):
        answer = registry_error(error)
        assert (answer.status, answer.code, answer.message) == (
            502,
            ErrorCode.UNAVAILABLE,
            error.message,
        )


def test_the_body_is_a_distribution_error() -> None:
    answer = registry_error(InvalidNameError("invalid repository name 'A'", {"name": "A"}))
    assert json.loads(answer.body()) == {
        "errors": [
            {
                "code": "NAME_INVALID",
                "message": "invalid repository name 'A'",
                "detail": {"name": "A"},
            }
        ]
    }
    assert json.loads(RegistryError(ErrorCode.UNSUPPORTED, "no").body()) == {
        "errors": [{"code": "UNSUPPORTED", "message": "no"}]
    }


def test_the_hierarchy_is_documented() -> None:
    documented = errors.__doc__ or ""
    for kind in (
        "CrevError",
        "ConfigError",
        "InvalidNameError",
        "InvalidDigestError",
        "InvalidReferenceError",
        "InvalidScopeError",
        "NameUnknownError",
        "MalformedHeaderError",
        "IncompleteBodyError",
        "UpstreamError",
        "UpstreamTimeoutError",
        "UpstreamCutError",
        "RegistryError",
    ):
        assert kind in documented, kind
