"""`BaseHTTPRequestHandler` classes that run crev's functions: what `api/*.py` export to Vercel
and what the local server dispatches to.

`http.server` (or Vercel's runtime, which owns `handle_one_request`) reads the request line and
calls `parse_request` and `do_*`; everything past the request line, the response's framing
included, goes through h11 (see client_connection). Everything a client can get back is a
registry JSON error or an upstream's answer: configuration errors, bad requests and crashes
included, never a traceback or the standard library's HTML.
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar, Protocol

import h11

from ..config import Settings
from ..errors import CrevError, Refusal, RegistryError, UpstreamCutError, registry_error
from ..log import crev_log, escaped, log_refusal, log_response
from ..messages import Headers, Request, Response, request_origin
from ..process import Process
from .client_connection import ClientConnection, is_tls_handshake


class Function(Protocol):
    """What a Vercel function runs: the registry API, the token endpoint or the page.

    A protocol rather than a `Callable` alias: a handler class holds its function as a
    `staticmethod`, which a class attribute typed `Callable` would have mypy read as a method."""

    def __call__(self, request: Request, settings: Settings, /) -> Response: ...


# Bounds on draining a refused request's body, so a response survives the close (see _linger).
LINGER_SECONDS = 10.0
LINGER_BYTES = 512 * 1024 * 1024
LINGER_READ_BYTES = 64 * 1024
# As `http.server` reads a request line: up to 64 KiB, and one byte more to see it is longer.
MAX_REQUEST_LINE_BYTES = 65536


class FunctionHandler(BaseHTTPRequestHandler):
    """Runs one crev function per request, keeping connections alive between requests."""

    protocol_version = "HTTP/1.1"
    # Headers and a small body go out as separate writes; with Nagle's algorithm the second
    # waits for the client's delayed ACK on every response (bench/README.md has the cost).
    disable_nagle_algorithm = True
    # Seconds a client may stay silent mid-request (or idle between requests) before crev
    # closes the connection, so a stalled client cannot hold a thread forever.
    timeout = 120
    # Errors found while reading the request line get a status line, never an HTTP/0.9 body.
    default_request_version = "HTTP/1.0"
    # Set by `handle_one_request` before `parse_request`; typeshed does not declare it.
    raw_requestline: bytes
    function: ClassVar[Function]
    # The process the function runs in: what it keeps between requests. Each `api/*.py`
    # function builds its own; the local server one for all three.
    process: ClassVar[Process]
    # The scheme the client used when no `X-Forwarded-Proto` says otherwise.
    default_scheme: ClassVar[str] = "http"
    # Why crev itself failed the request being answered (a 5xx of its own), for its log line.
    failure = ""

    def parse_request(self) -> bool:
        """The request head, read by h11 and checked for framing a host behind crev could read
        another way; a refusal is answered here, and the connection closed."""
        # As `http.server` does: no command until one is read (typeshed types it `str` only).
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        if self.raw_requestline in (b"\r\n", b"\n"):
            # RFC 9112 2.2: an empty line before a request line is ignored (some clients send
            # one after a body).
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE_BYTES + 1)
            if not self.raw_requestline:
                return False
        # A TLS handshake is binary: its refusal is logged by what it is, not by its bytes.
        tls = is_tls_handshake(self.raw_requestline)
        self.requestline = "" if tls else str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.client = ClientConnection(self.rfile, self.wfile)
        try:
            head = self.client.read_head(self.raw_requestline)
        except RegistryError as error:
            self.send_registry_error(error)
            return False
        self.command, self.path, self.request_version = head.method, head.target, head.version
        self.headers = head.message()
        self.content_length, self.chunked = head.content_length, head.chunked
        self.close_connection = False
        return True

    def function_for(self, path: str) -> Function | None:
        return type(self).function

    def version_string(self) -> str:
        return "crev"

    def date_time_string(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return self.process.http_date()

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the function, which answers 405 for what it does not serve.
        if name.startswith("do_"):
            return self.run_function
        raise AttributeError(name)

    def run_function(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        self.failure = ""
        response = self._respond(path, query)
        unread_body = not self.client.request_complete
        if unread_body:
            # An unread request body would be parsed as the next request on this connection.
            response.headers.set("Connection", "close")
        outcome = ""
        try:
            outcome = self._write(response)
        finally:
            response.close()
            ms = (time.monotonic() - started) * 1000
            log_response(
                self.command,
                path,
                response.status,
                response.upstream_status,
                ms,
                outcome,
                response.fallback,
                self.failure,
                response.mirror,
            )
        self.close_connection = self.close_connection or self.client.must_close
        if unread_body and not outcome:
            self._linger()
        elif read_past := self.client.read_past_the_request():
            self.rfile = io.BufferedReader(_Replayed(read_past, self.rfile))

    def _linger(self) -> None:
        """Read and drop what the client is still sending before closing.

        Closing a socket with unread input sends a reset, which destroys the response (a 413, a
        401) before a client still busy writing its body can read it.
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while time.monotonic() < deadline and drained < LINGER_BYTES:
                data = self.connection.recv(LINGER_READ_BYTES)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass

    def _respond(self, path: str, query: str) -> Response:
        try:
            settings = self.process.settings()
            function = self.function_for(path)
            if function is None:
                raise RegistryError(Refusal.NOT_SERVED, f"no endpoint at {path!r}")
            # Read back from `self.headers`, not from the head h11 read: Vercel's runtime
            # removes its internal headers there before the handler runs.
            headers = Headers(self.headers.items())
            request = Request(
                method=self.command,
                path=path,
                query=query,
                headers=headers,
                origin=request_origin(headers, self.default_scheme),
                body=self.client.body,
                content_length=self.content_length,
                chunked=self.chunked,
            )
            return function(request, settings)
        except CrevError as error:
            # The one place an error becomes what the client is answered.
            answer = registry_error(error)
            if answer.status >= 500:
                # Clients show only "502 Bad Gateway": the reason goes on the log line too.
                self.failure = answer.message
            return Response.from_error(answer)
        except Exception:
            crev_log().exception("crev failed on %s %s", self.command, path)
            return Response.from_error(RegistryError(Refusal.INTERNAL, "internal error in crev"))

    def _write(self, response: Response) -> str:
        """Send the response; how it ended when it could not be sent whole, else ''."""
        headers = [("Date", self.date_time_string()), ("Server", "crev"), *response.headers]
        try:
            self.client.start_response(response.status, headers)
            if self.client.carries_body(response.status):
                for chunk in response.body:
                    if chunk:
                        self.client.send_data(chunk)
            self.client.end_response()
            return ""
        except UpstreamCutError as error:
            # The upstream failed mid-body. Headers are gone already: cutting the connection
            # is the only way left to tell the client its body is incomplete.
            crev_log().warning("%s %s: %s", self.command, self.path.partition("?")[0], error)
            self.close_connection = True
            return "upstream-cut"
        except h11.LocalProtocolError as error:
            # h11 would not frame the response as crev gave it (a body longer or shorter than
            # its Content-Length): crev's own fault, cut like an upstream's.
            crev_log().error(
                "%s %s: response not framed: %s", self.command, self.path.partition("?")[0], error
            )
            self.close_connection = True
            return "unframed"
        except OSError:
            # The client hung up (a cancelled pull); nothing is left to tell it.
            self.close_connection = True
            return "client-gone"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level refusals `http.server` makes itself (an over-long request line) as
        registry errors."""
        reason = message or self.responses.get(code, ("error",))[0]
        self.send_registry_error(RegistryError(Refusal.unsupported_at(code), reason))

    def send_registry_error(self, error: RegistryError) -> None:
        """Answer a refusal made before any function ran, and close: the rest of the request
        cannot be trusted to be framed as it claims."""
        self.close_connection = True
        log_refusal(getattr(self, "requestline", ""), error.status, error.message)
        response = Response.from_error(error)
        response.headers.set("Connection", "close")
        client = getattr(self, "client", None) or ClientConnection(self.rfile, self.wfile)
        headers = [("Date", self.date_time_string()), ("Server", "crev"), *response.headers]
        with contextlib.suppress(OSError, h11.LocalProtocolError):
            client.respond(error.status, headers, b"".join(response.body))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: each request is logged once, with its upstream status, by `log_response`."""

    def log_message(self, format: str, *args: Any) -> None:
        crev_log().info("%s", escaped(format % args))


class _Replayed(io.RawIOBase):
    """A client stream with bytes already read from it put back in front."""

    def __init__(self, replayed: bytes, rest: io.BufferedIOBase) -> None:
        self._replayed = replayed
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._replayed:
            count = min(len(buffer), len(self._replayed))
            buffer[:count] = self._replayed[:count]
            self._replayed = self._replayed[count:]
            return count
        return self._rest.readinto1(buffer)
