"""`BaseHTTPRequestHandler` classes that run crev's endpoints: what `api/*.py` export to Vercel
and what the local server dispatches to.

Everything a client can get back is a registry JSON error or an upstream answer: configuration
errors, bad requests and crashes included, never a traceback or the standard library's HTML.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, ClassVar

from .config import ConfigError, Settings, current_settings
from .errors import RegistryError
from .messages import Headers, Request, Response
from .realm import request_origin
from .request_head import read_request_head
from .upstream import CHUNK_SIZE, UpstreamBodyError

if TYPE_CHECKING:
    import logging

Endpoint = Callable[[Request, Settings], Response]


def crev_log() -> logging.Logger:
    """crev's logger. `logging` is imported on first use, which comes after the first answer
    has been sent: importing it is about a tenth of a cold start."""
    import logging

    return logging.getLogger("crev")


_NO_BODY_STATUSES = frozenset({204, 304})
_date: tuple[int, str] = (0, "")
# Bounds on draining a refused request's body, so an answer survives the close (see _linger).
LINGER_SECONDS = 10.0
LINGER_BYTES = 512 * 1024 * 1024


class FunctionHandler(BaseHTTPRequestHandler):
    """Runs one crev endpoint per request, keeping connections alive between requests."""

    protocol_version = "HTTP/1.1"
    # Headers and a small body go out as separate writes; with Nagle's algorithm the second
    # waits for the client's delayed ACK, about 40 ms per response.
    disable_nagle_algorithm = True
    # Seconds a client may stay silent mid-request (or idle between requests) before crev
    # closes the connection, so a stalled client cannot hold a thread forever.
    timeout = 120
    # Errors found while reading the request line get a status line, never an HTTP/0.9 body.
    default_request_version = "HTTP/1.0"
    endpoint: ClassVar[Endpoint]
    # The scheme the client used when no `X-Forwarded-Proto` says otherwise.
    default_scheme: ClassVar[str] = "http"

    def parse_request(self) -> bool:
        """The request head, read strictly (see request_head): no HTTP/0.9, no header block
        over 64 KiB, no bare CR or folded lines, no control characters, one Host, and one
        unambiguous body framing (anything else is how requests get smuggled)."""
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        if self.raw_requestline in (b"\r\n", b"\n"):
            # RFC 9112 2.2: an empty line before a request line is ignored (some clients send
            # one after a body).
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                return False
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        try:
            head = read_request_head(self.raw_requestline, self.rfile)
        except RegistryError as error:
            self.send_registry_error(error)
            return False
        self.command, self.path, self.request_version = head.method, head.target, head.version
        self.headers = head.message()
        self.close_connection = not head.keep_alive
        if head.expects_continue:
            return self.handle_expect_100()
        return True

    def endpoint_for(self, path: str) -> Endpoint | None:
        return type(self).endpoint

    def version_string(self) -> str:
        return "crev"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # Every answer carries a Date; formatting it anew each time was a visible cost.
        global _date
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        if _date[0] != second:
            _date = (second, super().date_time_string(second))
        return _date[1]

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the endpoint, which answers 405 for what it does not serve.
        if name.startswith("do_"):
            return self.run_endpoint
        raise AttributeError(name)

    def run_endpoint(self) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        self._request: Request | None = None
        response = self._respond(path, query)
        unread_body = self._request is None or not self._request.body_consumed
        has_body = self._chunked() or (self._content_length() or 0) > 0
        if unread_body and has_body:
            # An unread request body would be parsed as the next request on this connection.
            response.headers.set("Connection", "close")
        try:
            self._write(response)
        finally:
            response.close()
            self._log(path, response, started)
        if unread_body and has_body:
            self._linger()

    def _linger(self) -> None:
        """Read and drop what the client is still sending before closing.

        Closing a socket with unread input sends a reset, which destroys the answer (a 413, a
        401) before a client still busy writing its body can read it.
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while time.monotonic() < deadline and drained < LINGER_BYTES:
                data = self.connection.recv(CHUNK_SIZE)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass

    def _respond(self, path: str, query: str) -> Response:
        try:
            settings = current_settings()
        except ConfigError as error:
            return Response.from_error(
                RegistryError(500, "UNKNOWN", f"crev is misconfigured: {error}")
            )
        endpoint = self.endpoint_for(path)
        if endpoint is None:
            return Response.from_error(
                RegistryError(404, "UNSUPPORTED", f"no endpoint at {path!r}")
            )
        try:
            headers = Headers(self.headers.items())
            request = Request(
                method=self.command,
                path=path,
                query=query,
                headers=headers,
                origin=request_origin(headers, self.default_scheme),
                body=self.rfile,
                content_length=self._content_length(),
                chunked=self._chunked(),
            )
            self._request = request
            return endpoint(request, settings)
        except RegistryError as error:
            return Response.from_error(error)
        except Exception:
            crev_log().exception("crev failed on %s %s", self.command, path)
            return Response.from_error(RegistryError(500, "UNKNOWN", "internal error in crev"))

    def _chunked(self) -> bool:
        return "Transfer-Encoding" in self.headers

    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return None if value is None else int(value)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        length = response.headers.get("content-length")
        has_body = self.command != "HEAD" and response.status not in _NO_BODY_STATUSES
        chunked = has_body and length is None
        for name, value in response.headers:
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if not has_body:
            return
        try:
            for chunk in response.body:
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except UpstreamBodyError as error:
            # Headers are gone already: cutting the connection is the only way left to tell
            # the client its body is incomplete.
            crev_log().warning("%s %s: %s", self.command, self.path.partition("?")[0], error)
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level refusals (bad request line, oversized headers) as registry errors."""
        reason = message or self.responses.get(code, ("error",))[0]
        self.send_registry_error(RegistryError(code, "UNSUPPORTED", reason))

    def send_registry_error(self, error: RegistryError) -> None:
        """Answer a refusal made before any endpoint ran, and close: the rest of the request
        cannot be trusted to be framed as it claims."""
        body = error.body()
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.send_response(error.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in error.headers:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and error.status not in _NO_BODY_STATUSES:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: each request is logged once, with its upstream status, by `_log`."""

    def log_message(self, format: str, *args: Any) -> None:
        crev_log().info(format, *args)

    def _log(self, path: str, response: Response, started: float) -> None:
        upstream = response.upstream_status if response.upstream_status is not None else "-"
        crev_log().info(
            "%s %s %s upstream=%s %.1fms",
            self.command,
            path,
            response.status,
            upstream,
            (time.monotonic() - started) * 1000,
        )


def configure_logging() -> None:
    import logging

    log = crev_log()
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
