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
    Refusal,
    RegistryError,
    UpstreamCutError,
    UpstreamError,
    UpstreamTimeoutError,
    method_not_allowed,
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


def test_a_refusal_is_answered_with_its_kind_s_code_and_status() -> None:
    assert (
        RegistryError(Refusal.SPANS_REGISTRIES, "no").status,
        Refusal.SPANS_REGISTRIES.code,
    ) == (
        400,
        ErrorCode.DENIED,
    )
    assert RegistryError(Refusal.NAME_UNKNOWN, "no").status == 404
    assert RegistryError(Refusal.BAD_REQUEST, "no").status == 400
    # Where HTTP asks for a status of its own.
    assert RegistryError(Refusal.BODY_TOO_LARGE, "too large").status == 413
    not_served = RegistryError(Refusal.NOT_SERVED, "no such path")
    assert (not_served.status, not_served.code) == (404, ErrorCode.UNSUPPORTED)


def test_every_kind_of_refusal_knows_its_status() -> None:
    for refusal in Refusal:
        assert 400 <= refusal.status < 600, refusal
    # Every code crev answers with is a kind's; the kinds are distinct answers.
    assert len({refusal.value for refusal in Refusal}) == len(Refusal)


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (404, Refusal.NOT_SERVED),
        (405, Refusal.METHOD_NOT_ALLOWED),
        (414, Refusal.REQUEST_LINE_TOO_LONG),
        (431, Refusal.HEADERS_TOO_LARGE),
        (501, Refusal.NOT_IMPLEMENTED),
        (505, Refusal.VERSION_NOT_SUPPORTED),
        (400, Refusal.BAD_REQUEST),
        (418, Refusal.BAD_REQUEST),
    ],
)
def test_what_a_library_refuses_is_a_kind_at_its_status(status: int, refusal: Refusal) -> None:
    assert Refusal.unsupported_at(status) is refusal


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
    assert json.loads(RegistryError(Refusal.BAD_REQUEST, "no").body()) == {
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
