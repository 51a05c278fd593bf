"""Reading HTTP heads strictly: a client's request before crev acts on it, and an upstream's
answer before crev passes it on.

The standard library's parser is lenient where a proxy must not be: it accepts HTTP/0.9, splits
header lines on a bare CR, unfolds obsolete line folding, takes a line without a colon for the
start of the body, and lets conflicting framing headers through; each of those lets one request
be read two ways by crev and the host behind it. Reading heads here is also several times
cheaper than the `email` parser `http.server` and `http.client` use, which was a fifth of crev's
CPU per request.
"""

from __future__ import annotations

import re
from http.client import HTTPMessage
from typing import BinaryIO, NamedTuple

from .errors import RegistryError
from .messages import Headers

# Well above any registry client's headers (a bearer token is a few KiB), far below abuse.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
# A body size no registry blob reaches (1 PiB); longer numbers are not sizes but attacks.
MAX_CONTENT_LENGTH_DIGITS = 16

# What a header line may hold: tab, visible ASCII, space and obs-text; any other byte is a
# control character. (`bytes.translate` finds one four times faster than a regex scan of a
# bearer token, the longest line a registry client sends.)
_FIELD_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
# RFC 9110 token characters: what a header name (and a method) consists of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")


class RequestHead(NamedTuple):
    method: str
    target: str
    version: str
    headers: Headers

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "") or ""
        options = {option.strip().lower() for option in connection.split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in options
        return "close" not in options

    @property
    def expects_continue(self) -> bool:
        expect = self.headers.get("expect", "") or ""
        return self.version == "HTTP/1.1" and expect.strip().lower() == "100-continue"

    def message(self) -> HTTPMessage:
        """The fields as the `http.server` API holds them (Vercel's runtime edits them)."""
        message = HTTPMessage()
        for name, value in self.headers:
            message[name] = value
        return message


class HeadError(ValueError):
    """A head that cannot be read one way only; `status` is the answer a client gets for it."""

    def __init__(self, status: int, message: str, code: str = "UNSUPPORTED") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def read_request_head(request_line: bytes, stream: BinaryIO) -> RequestHead:
    """Parse a request line and read its header block from `stream`; a RegistryError for
    a head crev must not serve."""
    try:
        method, target, version = _parse_request_line(request_line)
        headers = read_fields(stream)
        if len(headers.get_all("Host")) > 1:
            raise HeadError(400, "more than one Host header")
        check_framing(headers)
    except HeadError as error:
        raise RegistryError(error.status, error.code, str(error)) from None
    return RequestHead(method, target, version, headers)


def read_fields(stream: BinaryIO) -> Headers:
    """A header block up to its blank line."""
    return Headers(_parse_field(line) for line in _read_header_lines(stream))


def _parse_request_line(line: bytes) -> tuple[str, str, str]:
    words = line.decode("latin-1").split()
    if len(words) != 3:
        raise HeadError(400, "HTTP/0.9 requests are not served")
    method, target, version = words
    matched = _VERSION.fullmatch(version)
    if matched is None:
        raise HeadError(400, f"bad request version {version[:20]!r}")
    if matched[1] != "1":
        raise HeadError(505, f"{version} is not served; use HTTP/1.1")
    if not _TOKEN.fullmatch(method):
        raise HeadError(400, f"bad request method {method[:20]!r}")
    return method, target, "HTTP/1.0" if matched[2] == "0" else "HTTP/1.1"


def _read_header_lines(stream: BinaryIO) -> list[bytes]:
    lines: list[bytes] = []
    size = 0
    while True:
        line = stream.readline(MAX_HEADER_BYTES + 1)
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise HeadError(431, f"headers are over {MAX_HEADER_BYTES} bytes")
        if line in (b"\r\n", b"\n"):
            return lines
        if not line.endswith(b"\n"):
            raise HeadError(400, "head ended before its blank line")
        lines.append(line)
        if len(lines) > MAX_HEADER_FIELDS:
            raise HeadError(431, f"more than {MAX_HEADER_FIELDS} header fields")


def _parse_field(line: bytes) -> tuple[str, str]:
    content = line.removesuffix(b"\n").removesuffix(b"\r")
    if content[:1] in (b" ", b"\t"):
        raise HeadError(400, "folded header lines are not accepted")
    if content.translate(None, _FIELD_BYTES):
        raise HeadError(400, "control character in a header")
    name, colon, value = content.decode("latin-1").partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HeadError(400, f"malformed header line {name[:40]!r}")
    return name, value.strip(" \t")


def check_framing(headers: Headers) -> None:
    """One unambiguous body framing: at most one Content-Length, of digits, or chunked."""
    lengths = headers.get_all("Content-Length")
    encodings = headers.get_all("Transfer-Encoding")
    if len(lengths) > 1:
        raise HeadError(400, "more than one Content-Length header", "SIZE_INVALID")
    if len(encodings) > 1:
        raise HeadError(400, "more than one Transfer-Encoding header")
    if lengths and encodings:
        raise HeadError(400, "both Content-Length and Transfer-Encoding")
    if encodings and encodings[0].lower() != "chunked":
        raise HeadError(501, f"unsupported Transfer-Encoding {encodings[0][:40]!r}")
    if lengths:
        value = lengths[0]
        if not value.isdigit() or not value.isascii() or len(value) > MAX_CONTENT_LENGTH_DIGITS:
            raise HeadError(400, f"invalid Content-Length {value[:40]!r}", "SIZE_INVALID")
