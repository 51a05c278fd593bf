"""Registry-style errors: every refusal crev makes is one of these.

The body follows the distribution spec (`{"errors": [{"code", "message", "detail"}]}`) because
docker prints any other body raw to its user.
"""

from __future__ import annotations

import json
from typing import Any


class RegistryError(Exception):
    """An error answered to the client as a registry JSON error with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
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
        return f"RegistryError({self.status}, {self.code!r}, {self.message!r})"


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def name_invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(400, "NAME_INVALID", message, detail)


def unsupported(message: str, status: int = 404, allow: str | None = None) -> RegistryError:
    headers = [("Allow", allow)] if allow is not None else []
    return RegistryError(status, "UNSUPPORTED", message, headers=headers)


def upstream_unavailable(message: str, status: int = 502) -> RegistryError:
    return RegistryError(status, "UNAVAILABLE", message)
