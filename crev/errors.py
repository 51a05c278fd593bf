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
    └── RegistryError            a refusal in the client's terms: its kind, message and detail

The core (names, scopes, routes, header grammars, the upstream client) raises the domain errors
and knows nothing of statuses; `registry_error` is the one place they become what the client is
answered. Every refusal is of a `Refusal` kind, and that one table holds each kind's code and
status (distribution gives a code one status; crev refuses with UNSUPPORTED what it does not
serve, at the status HTTP asks for: 404, 405 with `Allow`, 414, 431, 501, 505). A
`MalformedHeaderError` means nothing to a client by itself: whoever reads a header knows whose
fault it is, and raises the error that says so.

The body follows the distribution spec (`{"errors": [{"code", "message", "detail"}]}`) because
docker prints any other body raw to its user.
"""

from __future__ import annotations

import json
from enum import Enum, StrEnum
from typing import Any, NamedTuple


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


class Answer(NamedTuple):
    """The code and status a kind of refusal is answered with."""

    code: ErrorCode
    status: int


class Refusal(Enum):
    """Every kind of refusal crev answers a client with, and its code and status: the one
    table of statuses."""

    # A name, digest or reference outside the OCI grammar, a name no route serves.
    NAME_INVALID = Answer(ErrorCode.NAME_INVALID, 400)
    DIGEST_INVALID = Answer(ErrorCode.DIGEST_INVALID, 400)
    # The distribution registry answers 404 to a reference that names no manifest, and the
    # OCI conformance suite expects MANIFEST_UNKNOWN.
    MANIFEST_UNKNOWN = Answer(ErrorCode.MANIFEST_UNKNOWN, 404)
    NAME_UNKNOWN = Answer(ErrorCode.NAME_UNKNOWN, 404)
    BLOB_UPLOAD_INVALID = Answer(ErrorCode.BLOB_UPLOAD_INVALID, 404)
    PAGINATION_NUMBER_INVALID = Answer(ErrorCode.PAGINATION_NUMBER_INVALID, 400)
    PATH_TOO_LONG = Answer(ErrorCode.NAME_INVALID, 414)
    # What crev does not serve in a request it could read (a scope, a form, a framing): a bad
    # request (distribution says 405 for UNSUPPORTED, which crev keeps for methods).
    BAD_REQUEST = Answer(ErrorCode.UNSUPPORTED, 400)
    NOT_SERVED = Answer(ErrorCode.UNSUPPORTED, 404)
    METHOD_NOT_ALLOWED = Answer(ErrorCode.UNSUPPORTED, 405)
    REQUEST_LINE_TOO_LONG = Answer(ErrorCode.UNSUPPORTED, 414)
    HEADERS_TOO_LARGE = Answer(ErrorCode.UNSUPPORTED, 431)
    # A transfer coding crev does not know (h11 refuses it so).
    NOT_IMPLEMENTED = Answer(ErrorCode.UNSUPPORTED, 501)
    VERSION_NOT_SUPPORTED = Answer(ErrorCode.UNSUPPORTED, 505)
    # A token request whose scopes need tokens from more than one registry.
    SPANS_REGISTRIES = Answer(ErrorCode.DENIED, 400)
    BODY_INVALID = Answer(ErrorCode.SIZE_INVALID, 400)
    BODY_INCOMPLETE = Answer(ErrorCode.SIZE_INVALID, 408)
    BODY_TOO_LARGE = Answer(ErrorCode.SIZE_INVALID, 413)
    # An upstream that gave no usable answer (crev is a gateway), or none in time.
    UPSTREAM_FAILED = Answer(ErrorCode.UNAVAILABLE, 502)
    UPSTREAM_TIMEOUT = Answer(ErrorCode.UNAVAILABLE, 504)
    # crev's own fault: a setting it cannot use, a bug.
    INTERNAL = Answer(ErrorCode.UNKNOWN, 500)

    @property
    def code(self) -> ErrorCode:
        return self.value.code

    @property
    def status(self) -> int:
        return self.value.status

    @classmethod
    def unsupported_at(cls, status: int) -> Refusal:
        """What crev does not serve, refused at `status` as an HTTP library chose it (h11's
        hint, `http.server`'s own refusals): a bad request where the table has no such kind."""
        for refusal in cls:
            if refusal.code is ErrorCode.UNSUPPORTED and refusal.status == status:
                return refusal
        return cls.BAD_REQUEST


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
    """A refusal in the client's terms: answered as a registry JSON error with its kind's code
    and status, and `headers` where HTTP asks for them (a 405's `Allow`)."""

    def __init__(
        self,
        refusal: Refusal,
        message: str,
        detail: Any = None,
        *,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, detail)
        self.refusal = refusal
        self.code = refusal.code
        self.status = refusal.status
        self.headers = headers or []

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()

    def __repr__(self) -> str:
        return f"RegistryError({self.status}, {str(self.code)!r}, {self.message!r})"


# Most specific first: a subclass maps before its base.
_ANSWERS: tuple[tuple[type[CrevError], Refusal], ...] = (
    (InvalidNameError, Refusal.NAME_INVALID),
    (InvalidDigestError, Refusal.DIGEST_INVALID),
    (InvalidReferenceError, Refusal.MANIFEST_UNKNOWN),
    (InvalidScopeError, Refusal.BAD_REQUEST),
    (NameUnknownError, Refusal.NAME_UNKNOWN),
    (IncompleteBodyError, Refusal.BODY_INCOMPLETE),
    (UpstreamTimeoutError, Refusal.UPSTREAM_TIMEOUT),
    (UpstreamError, Refusal.UPSTREAM_FAILED),
)


def registry_error(error: CrevError) -> RegistryError:
    """The registry error a client is answered for `error`. What has no answer of its own (a
    misconfiguration, a header crev failed to read) is crev's fault: a 500."""
    if isinstance(error, RegistryError):
        return error
    for kind, refusal in _ANSWERS:
        if isinstance(error, kind):
            return RegistryError(refusal, error.message, error.detail)
    if isinstance(error, ConfigError):
        return RegistryError(Refusal.INTERNAL, f"crev is misconfigured: {error.message}")
    return RegistryError(Refusal.INTERNAL, f"internal error in crev: {error.message}")


def method_not_allowed(message: str, allow: str) -> RegistryError:
    """A method the endpoint does not answer: 405, with the methods it does in `Allow`."""
    return RegistryError(Refusal.METHOD_NOT_ALLOWED, message, headers=[("Allow", allow)])


def describe(error: BaseException) -> str:
    """An exception as a client may read it: its type and what it says, nothing more."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
