"""Checks on a request's head (request line and header block) before crev acts on it.

The standard library's parser is lenient where a proxy must not be: it accepts HTTP/0.9, splits
header lines on a bare CR, unfolds obsolete line folding, and lets conflicting framing headers
through, and each of those lets one request be read two ways by crev and the host behind it.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import BinaryIO

from .errors import RegistryError

# Well above any registry client's headers (a bearer token is a few KiB), far below abuse.
MAX_HEADER_BYTES = 64 * 1024
# A body size no registry blob reaches (1 PiB); longer numbers are not sizes but attacks.
MAX_CONTENT_LENGTH_DIGITS = 16


# Control characters other than tab, which header values may hold.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HeaderLineRecorder:
    """Passes `readline` through while keeping the raw header lines for `check_request_head`."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line = self._stream.readline(limit)
        self.lines.append(line)
        return line


def check_request_head(request_line: bytes, header_lines: list[bytes], headers: Message) -> None:
    """Raise a RegistryError for a request head crev must not serve."""
    if len(request_line.split()) != 3:
        raise RegistryError(400, "UNSUPPORTED", "HTTP/0.9 requests are not served")
    if sum(len(line) for line in header_lines) > MAX_HEADER_BYTES:
        raise RegistryError(
            431, "UNSUPPORTED", f"request headers are over {MAX_HEADER_BYTES} bytes"
        )
    for line in header_lines:
        _check_header_line(line)
    if len(headers.get_all("Host") or []) > 1:
        raise RegistryError(400, "UNSUPPORTED", "more than one Host header")
    _check_framing(headers)


def _check_header_line(line: bytes) -> None:
    content = line.removesuffix(b"\n").removesuffix(b"\r")
    if content[:1] in (b" ", b"\t"):
        raise RegistryError(400, "UNSUPPORTED", "folded header lines are not accepted")
    if _CONTROL.search(content):
        raise RegistryError(400, "UNSUPPORTED", "control character in a request header")


def _check_framing(headers: Message) -> None:
    lengths = headers.get_all("Content-Length") or []
    encodings = headers.get_all("Transfer-Encoding") or []
    if len(lengths) > 1:
        raise RegistryError(400, "SIZE_INVALID", "more than one Content-Length header")
    if len(encodings) > 1:
        raise RegistryError(400, "UNSUPPORTED", "more than one Transfer-Encoding header")
    if lengths and encodings:
        raise RegistryError(400, "UNSUPPORTED", "both Content-Length and Transfer-Encoding")
    if encodings and encodings[0].strip().lower() != "chunked":
        raise RegistryError(
            501, "UNSUPPORTED", f"unsupported Transfer-Encoding {encodings[0].strip()[:40]!r}"
        )
    if lengths:
        value = lengths[0].strip()
        if not value.isdigit() or not value.isascii() or len(value) > MAX_CONTENT_LENGTH_DIGITS:
            raise RegistryError(400, "SIZE_INVALID", f"invalid Content-Length {value[:40]!r}")
