"""Registry-style errors: every refusal crev makes is one of these.

The body follows the distribution spec (`{"errors": [{"code", "message", "detail"}]}`) because
docker prints any other body raw to its user.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """The error codes of the OCI distribution spec, and the two distribution adds: `UNKNOWN`
    (an internal error) and `UNAVAILABLE` (crev's word for an upstream that did not answer)."""

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    UNKNOWN = "UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"


class RegistryError(Exception):
    """An error answered to the client as a registry JSON error with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        detail: Any = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or []

    def body(self) -> bytes:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()

    def __repr__(self) -> str:
        return f"RegistryError({self.status}, {str(self.code)!r}, {self.message!r})"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def name_invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(400, ErrorCode.NAME_INVALID, message, detail)


def unsupported(message: str, status: int = 404, allow: str | None = None) -> RegistryError:
    headers = [("Allow", allow)] if allow is not None else []
    return RegistryError(status, ErrorCode.UNSUPPORTED, message, headers=headers)


def upstream_unavailable(message: str, status: int = 502) -> RegistryError:
    return RegistryError(status, ErrorCode.UNAVAILABLE, message)
