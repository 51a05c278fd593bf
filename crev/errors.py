"""The errors crev raises, and the registry error each one reaches a client as.

    CrevError
    ├── ConfigError              a setting that cannot be used; names the variable
    ├── InvalidNameError         a name outside the OCI grammar          400 NAME_INVALID
    ├── InvalidDigestError       a digest outside the OCI grammar        400 DIGEST_INVALID
    ├── InvalidReferenceError    a reference that is no tag or digest    404 MANIFEST_UNKNOWN
    ├── InvalidScopeError        a scope outside the token spec          400 UNSUPPORTED
    ├── NameUnknownError         a valid name that no route serves       404 NAME_UNKNOWN
    ├── MalformedHeaderError     a header value outside its grammar
    ├── IncompleteBodyError      a request body that stopped arriving    408 SIZE_INVALID
    ├── UpstreamError            an upstream gave no usable answer       502 UNAVAILABLE
    │   ├── UpstreamTimeoutError     it did not answer in time           504 UNAVAILABLE
    │   ├── UpstreamUnreachableError it could not be connected to
    │   │   └── UpstreamTLSError         its TLS handshake failed
    │   ├── UpstreamClosedError      it closed or reset the connection without answering
    │   ├── UpstreamRealmError       its token realm answered a 5xx or a 429
    │   └── UpstreamCutError         it failed after its head went out: the answer is cut
    └── RegistryError            a refusal in the client's terms: code, message (and status)

The core (names, scopes, routes, header grammars, the upstream client) raises the domain errors
and knows nothing of statuses; `registry_error` is the one place they become what the client is
answered. As in distribution's errcode, each `ErrorCode` knows the status it is answered with;
a refusal names its code, and a status of its own only where HTTP asks for one (a 405 with
`Allow`, a 413, a 431). A `MalformedHeaderError` means nothing to a client by itself: whoever
reads a header knows whose fault it is, and raises the error that says so.

The body follows the distribution spec (`{"errors": [{"code", "message", "detail"}]}`) because
docker prints any other body raw to its user.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """The error codes of the OCI distribution spec, and those distribution adds: `UNKNOWN`
    (an internal error), `PAGINATION_NUMBER_INVALID` (a tag list's `n` that is no number) and
    `UNAVAILABLE` (crev's word for an upstream that did not answer)."""

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    UNKNOWN = "UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"

    @property
    def status(self) -> int:
        """The HTTP status a refusal with this code is answered with."""
        return _STATUSES[self]


_STATUSES: dict[ErrorCode, int] = {
    ErrorCode.BLOB_UNKNOWN: 404,
    ErrorCode.BLOB_UPLOAD_INVALID: 404,
    ErrorCode.BLOB_UPLOAD_UNKNOWN: 404,
    ErrorCode.DIGEST_INVALID: 400,
    ErrorCode.MANIFEST_BLOB_UNKNOWN: 404,
    ErrorCode.MANIFEST_INVALID: 400,
    ErrorCode.MANIFEST_UNKNOWN: 404,
    ErrorCode.NAME_INVALID: 400,
    ErrorCode.NAME_UNKNOWN: 404,
    ErrorCode.PAGINATION_NUMBER_INVALID: 400,
    ErrorCode.SIZE_INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.DENIED: 403,
    # distribution says 405; crev refuses with it what it does not serve in a request it could
    # read (a scope, a form, a framing), a bad request, and a method with `method_not_allowed`.
    ErrorCode.UNSUPPORTED: 400,
    ErrorCode.TOOMANYREQUESTS: 429,
    ErrorCode.UNKNOWN: 500,
    # An upstream that gave no usable answer: crev is a gateway.
    ErrorCode.UNAVAILABLE: 502,
}


class CrevError(Exception):
    """Anything crev raises on purpose. `message` is written for the person who sent the
    input; `detail` is the distribution spec's structured detail (e.g. `{"name": ...}`)."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ConfigError(CrevError, ValueError):
    """A setting that cannot be used; the message names the variable."""


class InvalidNameError(CrevError, ValueError):
    """A repository name that does not follow the OCI grammar."""


class InvalidDigestError(CrevError, ValueError):
    """A digest that does not follow the OCI grammar."""


class InvalidReferenceError(CrevError, ValueError):
    """A manifest reference that is neither a tag nor a digest."""


class InvalidScopeError(CrevError, ValueError):
    """A token scope that does not follow `type[(class)]:name:action[,action]*`."""


class NameUnknownError(CrevError, LookupError):
    """A valid repository name that no route serves."""


class MalformedHeaderError(CrevError, ValueError):
    """A header value that does not follow its grammar; the message says where."""


class IncompleteBodyError(CrevError):
    """A request body that stopped arriving: the client stalled or hung up mid-body."""


class UpstreamError(CrevError):
    """An upstream registry or token realm that gave no usable answer; the message names it."""


class UpstreamTimeoutError(UpstreamError):
    """An upstream that did not answer within the configured timeout."""


class UpstreamUnreachableError(UpstreamError):
    """An upstream that could not be connected to: refused, no route, no such host."""


class UpstreamTLSError(UpstreamUnreachableError):
    """An upstream whose TLS handshake failed: a certificate crev does not trust, or none."""


class UpstreamClosedError(UpstreamError):
    """An upstream that closed or reset the connection before any answer."""


class UpstreamRealmError(UpstreamError):
    """An upstream's token realm that answered a token request with a failure of its own (a
    5xx or a 429), rather than a token or a refusal."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UpstreamCutError(UpstreamError):
    """An upstream that failed after its answer's head went to the client: the client's stream
    must be cut, the only way left to tell it the body is incomplete."""


class RegistryError(CrevError):
    """A refusal in the client's terms: answered as a registry JSON error with its code's
    status, or with `status` where HTTP asks for another."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, detail)
        self.code = code
        self.status = code.status if status is None else status
        self.headers = headers or []

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()

    def __repr__(self) -> str:
        return f"RegistryError({self.status}, {str(self.code)!r}, {self.message!r})"


# Most specific first: a subclass maps before its base. A status is given where it is not the
# code's own.
_ANSWERS: tuple[tuple[type[CrevError], ErrorCode, int | None], ...] = (
    (InvalidNameError, ErrorCode.NAME_INVALID, None),
    (InvalidDigestError, ErrorCode.DIGEST_INVALID, None),
    (InvalidReferenceError, ErrorCode.MANIFEST_UNKNOWN, None),
    (InvalidScopeError, ErrorCode.UNSUPPORTED, None),
    (NameUnknownError, ErrorCode.NAME_UNKNOWN, None),
    (IncompleteBodyError, ErrorCode.SIZE_INVALID, 408),
    (UpstreamTimeoutError, ErrorCode.UNAVAILABLE, 504),
    (UpstreamError, ErrorCode.UNAVAILABLE, None),
)


def registry_error(error: CrevError) -> RegistryError:
    """The registry error a client is answered for `error`. What has no answer of its own (a
    misconfiguration, a header crev failed to read) is crev's fault: a 500."""
    if isinstance(error, RegistryError):
        return error
    for kind, code, status in _ANSWERS:
        if isinstance(error, kind):
            return RegistryError(code, error.message, error.detail, status=status)
    if isinstance(error, ConfigError):
        return RegistryError(ErrorCode.UNKNOWN, f"crev is misconfigured: {error.message}")
    return RegistryError(ErrorCode.UNKNOWN, f"internal error in crev: {error.message}")


def not_served(message: str) -> RegistryError:
    """A path crev serves nothing at: 404, as a registry answers an API it does not have."""
    return RegistryError(ErrorCode.UNSUPPORTED, message, status=404)


def method_not_allowed(message: str, allow: str) -> RegistryError:
    """A method the endpoint does not answer: 405, with the methods it does in `Allow`."""
    return RegistryError(ErrorCode.UNSUPPORTED, message, status=405, headers=[("Allow", allow)])


def describe(error: BaseException) -> str:
    """An exception as a client may read it: its type and what it says, nothing more."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
