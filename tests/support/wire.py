"""Talking to crev over raw sockets, and checking that an answer is a registry JSON error.

An HTTP client library normalises what it sends (dot segments, escapes, header folding); the
hardening tests need the exact bytes on the wire, so they build requests by hand.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

HOST = "127.0.0.1"


@dataclass
class RawResponse:
    """An answer read off the socket: status line, headers, body, and the bytes as received."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def fetch(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request on a fresh connection. Plain HTTP only: skipping the CA bundle makes a client
    cost microseconds instead of tens of milliseconds."""
    kwargs.setdefault("timeout", 15)
    with httpx.Client(verify=False) as client:
        return client.request(method, url, **kwargs)


def port_of(crev: Any) -> int:
    """The port of a `start_crev` server."""
    return int(crev.server.server_address[1])


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` to 127.0.0.1:port and read until the server closes (or `timeout` passes)."""
    with socket.create_connection((HOST, port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
        return received


def parse(raw: bytes) -> RawResponse:
    """The first answer in `raw`; fails the test when there is no status line at all."""
    assert raw.startswith(b"HTTP/1."), f"no HTTP status line in the answer: {raw[:300]!r}"
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = [*lines[0].split(" ", 2), ""][:3]
    headers = [
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    ]
    response = RawResponse(int(status), reason, headers, rest, raw)
    length = response.header("content-length")
    if length is not None:
        response.body = rest[: int(length)]
    return response


def request_bytes(
    target: str | bytes,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    host: str | None = "crev.test",
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """One request with `Connection: close`; `target` goes on the request line unchanged."""
    if isinstance(target, str):
        target = target.encode("utf-8")
    lines = [method.encode() + b" " + target + b" " + version.encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode("latin-1"))
    for name, value in headers or []:
        lines.append(f"{name}: {value}".encode("latin-1"))
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send(port: int, target: str | bytes, **options: Any) -> RawResponse:
    timeout = options.pop("timeout", 10.0)
    return parse(exchange(port, request_bytes(target, **options), timeout))


def assert_registry_error(
    status: int,
    content_type: str | None,
    body: bytes,
    expected_status: int | tuple[int, ...],
    code: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The answer is `{"errors": [{"code", "message", ...}]}` with the expected status and code;
    returns the first error."""
    statuses = (expected_status,) if isinstance(expected_status, int) else expected_status
    assert status in statuses, f"status {status}, expected {statuses}: {body[:300]!r}"
    assert content_type is not None, "a registry error needs a Content-Type"
    assert content_type.split(";")[0].strip() == "application/json", content_type
    try:
        document = json.loads(body)
    except ValueError as error:
        raise AssertionError(f"not a JSON body: {body[:300]!r}") from error
    assert isinstance(document, dict), document
    errors = document.get("errors")
    assert isinstance(errors, list), document
    assert errors, document
    assert all(
        isinstance(entry, dict)
        and isinstance(entry.get("code"), str)
        and isinstance(entry.get("message"), str)
        for entry in errors
    ), document
    if code is not None:
        codes = (code,) if isinstance(code, str) else code
        assert errors[0]["code"] in codes, f"code {errors[0]['code']!r}, expected {codes}"
    return errors[0]


def raw_error(
    response: RawResponse,
    expected_status: int | tuple[int, ...],
    code: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    return assert_registry_error(
        response.status, response.header("content-type"), response.body, expected_status, code
    )


def http_error(
    response: httpx.Response,
    expected_status: int | tuple[int, ...],
    code: str | tuple[str, ...] | None = None,
) -> dict[str, Any]:
    return assert_registry_error(
        response.status_code,
        response.headers.get("content-type"),
        response.content,
        expected_status,
        code,
    )


def is_registry_error(content_type: str | None, body: bytes) -> bool:
    """Whether a body is a registry JSON error (for property tests that branch on it)."""
    if content_type is None or content_type.split(";")[0].strip() != "application/json":
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False
    errors = document.get("errors") if isinstance(document, dict) else None
    return (
        isinstance(errors, list)
        and bool(errors)
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("code"), str)
            and isinstance(entry.get("message"), str)
            for entry in errors
        )
    )
