"""The client's side of one request, carried by h11 over a `BaseHTTPRequestHandler`'s streams.

h11 reads the request head and body (chunked framing included) and frames crev's response for the
client's HTTP version; crev only moves bytes between it and the handler's `rfile` and `wfile`.
On top of h11's grammar crev refuses what h11 accepts but a host behind crev might read another
way: control characters in a field (h11 takes any byte but NUL and whitespace), obsolete line
folding (h11 unfolds it), repeated framing fields (h11 merges equal `Content-Length`s),
`Content-Length` beside `Transfer-Encoding`, and `Transfer-Encoding` in an HTTP/1.0 request
(RFC 9112 6.1: faulty framing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler
from io import BufferedIOBase
from typing import NamedTuple

import h11

from ..errors import IncompleteBodyError, Refusal, RegistryError
from ..messages import Headers, has_control_characters

# Well above any registry client's headers (a bearer token is a few KiB), far below abuse.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
# A body size no registry blob reaches (1 PiB); longer numbers are not sizes but attacks.
MAX_CONTENT_LENGTH_DIGITS = 16
# How much of an invalid Content-Length a refusal quotes: enough to recognise, never a flood.
SHOWN_CONTENT_LENGTH_CHARS = 40
READ_BYTES = 64 * 1024
_REASONS = {status: reason for status, (reason, _) in BaseHTTPRequestHandler.responses.items()}


class RequestHead(NamedTuple):
    method: str
    target: str
    version: str
    headers: Headers
    content_length: int | None
    chunked: bool

    def message(self) -> HTTPMessage:
        """The fields as the `http.server` API holds them (Vercel's runtime edits them)."""
        message = HTTPMessage()
        for name, value in self.headers:
            message[name] = value
        return message


class ClientConnection:
    """One request and crev's response to it; a new one is made for each request a connection
    carries."""

    def __init__(self, rfile: BufferedIOBase, wfile: BufferedIOBase) -> None:
        self._rfile = rfile
        self._wfile = wfile
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES + 1024)
        self._remaining: int | None = None
        self._method: str | None = None

    # ------------------------------------------------------------------ the request

    def read_head(self, request_line: bytes) -> RequestHead:
        """The request head, `request_line` being its first line, already read; a
        RegistryError for a head crev must not serve."""
        # A TLS handshake or HTTP/0.9 is refused at once, not after waiting for headers that
        # will never come (skopeo tries TLS first, and waits 10 s for an answer).
        if is_tls_handshake(request_line):
            raise RegistryError(Refusal.BAD_REQUEST, TLS_ON_PLAIN_HTTP)
        if not _looks_like_a_request_line(request_line):
            raise RegistryError(Refusal.BAD_REQUEST, "not an HTTP/1.x request line")
        lines = _read_header_lines(self._rfile, len(request_line))
        _check_lines(lines)
        if not lines or lines[-1] not in (b"\r\n", b"\n"):
            raise RegistryError(Refusal.BAD_REQUEST, "request head ended before its blank line")
        self._h11.receive_data(request_line + b"".join(lines))
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as error:
            raise _refusal(error) from None
        if not isinstance(event, h11.Request):
            raise RegistryError(Refusal.BAD_REQUEST, "request head ended before its blank line")
        self._method = event.method.decode("ascii")
        head = _request_head(event)
        _check_framing(head)
        self._remaining = head.content_length
        if not head.chunked and not head.content_length:
            self._h11.next_event()  # the end of a request without a body
        return head

    def body(self) -> Iterator[bytes]:
        """The request body as the client sends it, de-chunked. A length-delimited body is never
        read past its end; what was read past a chunked one is kept for the next request
        (`read_past_the_request`). A client that breaks the framing, stops sending or hangs up
        is a 400/408 registry error."""
        if self._h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            try:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    self._h11.receive_data(self._rfile.read1(self._read_size()))
                    continue
            except h11.RemoteProtocolError as error:
                raise RegistryError(
                    Refusal.BODY_INVALID, f"malformed request body: {error}"
                ) from None
            except OSError as error:
                raise IncompleteBodyError(f"the request body stopped arriving: {error}") from None
            if isinstance(event, h11.Data):
                if self._remaining is not None:
                    self._remaining -= len(event.data)
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return

    def _read_size(self) -> int:
        # A length-delimited body is read exactly; a chunked one may be read past its end
        # (see `read_past_the_request`).
        return READ_BYTES if self._remaining is None else max(1, min(READ_BYTES, self._remaining))

    @property
    def request_complete(self) -> bool:
        """Whether the whole request, body included, has been read."""
        return self._h11.their_state is h11.DONE

    # ------------------------------------------------------------------ the response

    def start_response(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self._send(
            h11.Response(
                status_code=status,
                headers=[
                    (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
                ],
                reason=_REASONS.get(status, "").encode(),
            )
        )

    def send_data(self, chunk: bytes) -> None:
        # Data passes through as given: no copy of a relayed blob into a joined buffer.
        for piece in self._h11.send_with_data_passthrough(h11.Data(data=chunk)) or ():
            self._wfile.write(piece)

    def end_response(self) -> None:
        self._send(h11.EndOfMessage())

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        """A whole small response (an error); no body for HEAD, 204 and 304, as h11 knows."""
        self.start_response(status, headers)
        if self.carries_body(status):
            self.send_data(body)
        self.end_response()

    def carries_body(self, status: int) -> bool:
        return self._method != "HEAD" and status not in (204, 304) and status >= 200

    @property
    def must_close(self) -> bool:
        """Whether the connection cannot carry another request after this response."""
        return self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE

    def read_past_the_request(self) -> bytes:
        """What was read beyond the request's end (a pipelined next request after a chunked
        body): the start of the next request, for the next handler to read."""
        return bytes(self._h11.trailing_data[0]) if self.request_complete else b""

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._wfile.write(data)


# podman and skopeo try https first on a registry they may reach over http, and fall back to
# http when the answer is not TLS: an everyday event, said in words rather than its bytes.
TLS_ON_PLAIN_HTTP = "a TLS handshake on a plain-HTTP port: the client tried https first"


def is_tls_handshake(data: bytes) -> bool:
    """Whether `data` opens a TLS handshake record (content type 22, protocol version 3.x): a
    ClientHello, which carries no text worth showing."""
    return data[:2] == b"\x16\x03"


def _looks_like_a_request_line(line: bytes) -> bool:
    """Three words, the last an HTTP version: what h11 then reads exactly."""
    words = line.rstrip(b"\r\n").split(b" ")
    return line.endswith(b"\n") and len(words) == 3 and words[2].startswith(b"HTTP/")


def _read_header_lines(stream: BufferedIOBase, size: int) -> list[bytes]:
    """The header lines up to and with the blank line (or what came before the client hung
    up), within the size and count limits (431 past them)."""
    lines: list[bytes] = []
    while True:
        line = stream.readline(MAX_HEADER_BYTES + 1)
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise RegistryError(
                Refusal.HEADERS_TOO_LARGE, f"headers are over {MAX_HEADER_BYTES} bytes"
            )
        if not line:
            return lines
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return lines
        if len(lines) > MAX_HEADER_FIELDS:
            raise RegistryError(
                Refusal.HEADERS_TOO_LARGE, f"more than {MAX_HEADER_FIELDS} header fields"
            )


def _request_head(event: h11.Request) -> RequestHead:
    version = event.http_version.decode()
    if not version.startswith("1."):
        raise RegistryError(
            Refusal.VERSION_NOT_SUPPORTED, f"HTTP/{version} is not served; use HTTP/1.1"
        )
    headers = Headers(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in event.headers.raw_items()
    )
    length = headers.get("content-length")
    return RequestHead(
        method=event.method.decode("ascii"),
        target=event.target.decode("ascii"),
        version=f"HTTP/{version}",
        headers=headers,
        content_length=None if length is None else int(length),
        chunked="transfer-encoding" in headers,
    )


def _check_lines(lines: list[bytes]) -> None:
    """Refuse, before h11 reads them, header lines h11 would take or repair: control
    characters it lets through, a fold it would unfold, framing fields it would merge or
    choose between."""
    framing: dict[bytes, int] = {}
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise RegistryError(Refusal.BAD_REQUEST, "folded header lines are not accepted")
        if has_control_characters(line.rstrip(b"\r\n")):
            raise RegistryError(Refusal.BAD_REQUEST, "control character in a header")
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            digits = value.strip()
            if not digits.isdigit() or len(digits) > MAX_CONTENT_LENGTH_DIGITS:
                shown = digits[:SHOWN_CONTENT_LENGTH_CHARS].decode("latin-1")
                raise RegistryError(Refusal.BODY_INVALID, f"invalid Content-Length {shown!r}")
        if name in (b"content-length", b"transfer-encoding"):
            framing[name] = framing.get(name, 0) + 1
    if framing.get(b"content-length", 0) > 1:
        raise RegistryError(Refusal.BODY_INVALID, "more than one Content-Length header")
    if framing.get(b"transfer-encoding", 0) > 1:
        raise RegistryError(Refusal.BAD_REQUEST, "more than one Transfer-Encoding header")
    if len(framing) > 1:
        raise RegistryError(Refusal.BAD_REQUEST, "both Content-Length and Transfer-Encoding")


def _check_framing(head: RequestHead) -> None:
    if head.chunked and head.version == "HTTP/1.0":
        raise RegistryError(
            Refusal.BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 request is faulty framing"
        )


def _refusal(error: h11.RemoteProtocolError) -> RegistryError:
    # h11's words name the fault and then quote the line; the quote is left out, as a header
    # line can hold a credential.
    # A Content-Length h11 would refuse was refused before it read the head (`_check_lines`,
    # with SIZE_INVALID), so what is left is the head's grammar.
    fault = str(error).partition(":")[0]
    return RegistryError(
        Refusal.unsupported_at(error.error_status_hint), f"malformed request head: {fault}"
    )
