"""crev's Vercel functions under Vercel's own Python runtime, behind a stand-in for Vercel's edge.

In production Vercel starts a function as ``python -m vercel_runtime.vc_init`` (PyPI
``vercel-runtime``, the version the CLI's Python builder pins) with ``VERCEL_IPC_PATH`` naming a
Unix socket that the platform listens on. ``vc_init`` imports ``api/<name>.py``, wraps its
``handler`` class in a ``ThreadingHTTPServer`` on 127.0.0.1, announces the port with a
``server-started`` message and, per request, sends ``handler-started``, ``log`` (stdout, stderr
and ``logging``, base64) and ``end``. The platform's edge then forwards each request to that
port and streams the answer back.

`run_function` plays the platform's side of that socket for one function; `run_edge` routes
like the edge (``vercel.json`` rewrites, ``/api/<name>``), forwarding requests and answers as
streams and setting ``X-Forwarded-Host``/``X-Forwarded-Proto`` as Vercel does; `run_vercel_app`
runs every ``api/*.py`` and the edge in front of them.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from crev.server import load_function_paths

from .stand_in import HOP_BY_HOP, AnyMethodHandler, StandInServer, end_to_end
from .tools import stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
# How long the edge waits on a silent function (connect or read) before giving up.
FUNCTION_TIMEOUT_S = 120.0
CHUNK_SIZE = 64 * 1024

_INTERNAL_PREFIX = "x-vercel-internal-"


class FunctionLog(NamedTuple):
    """One IPC ``log`` message, decoded."""

    message: str
    level: str  # "info", "warn", ... for `logging`; "stdout"/"stderr" for streams
    request_id: int  # the `x-vercel-internal-request-id` of the request it belongs to, or 0


class _IpcListener:
    """The platform's end of ``VERCEL_IPC_PATH``: accepts the function and reads every message.

    Messages are read in a thread for the life of the function, since a function whose socket
    buffer fills up blocks on its next log line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._connection: socket.socket | None = None
        self._messages: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None

    def accept(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._server.settimeout(0.1)
        while self._connection is None:
            if process.poll() is not None:
                raise RuntimeError(f"exited with {process.returncode} before connecting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"did not connect to {self.path} within {timeout} s")
            with contextlib.suppress(TimeoutError):
                self._connection, _ = self._server.accept()
        self._connection.settimeout(None)
        self._reader = threading.Thread(target=self._read, name="vc-ipc-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._connection is not None
        pending = b""
        while True:
            try:
                data = self._connection.recv(CHUNK_SIZE)
            except OSError:
                data = b""
            if not data:
                break
            pending += data
            *complete, pending = pending.split(b"\0")
            if complete:
                with self._changed:
                    self._messages.extend(json.loads(raw) for raw in complete if raw)
                    self._changed.notify_all()
        with self._changed:
            self._messages.append({"type": "closed", "payload": {}})
            self._changed.notify_all()

    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._messages)

    def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """Wait until `predicate(messages)` holds; return the messages either way."""
        with self._changed:
            self._changed.wait_for(lambda: predicate(self._messages), timeout)
            return list(self._messages)

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.shutdown(socket.SHUT_RDWR)
            self._connection.close()
        self._server.close()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT_S)


@dataclass
class VercelFunction:
    """One ``api/<name>.py`` served by ``vercel_runtime.vc_init`` on 127.0.0.1:`port`."""

    name: str  # "v2" for api/v2.py
    port: int
    process: subprocess.Popen[bytes]
    output_path: Path  # what the function wrote outside IPC (fatal errors before start)
    _ipc: _IpcListener = field(repr=False)

    @property
    def route(self) -> str:
        return f"/api/{self.name}"

    def messages(self) -> list[dict[str, Any]]:
        """Every IPC message so far, in order, as JSON objects."""
        return self._ipc.messages()

    def logs(self) -> list[FunctionLog]:
        return [_decode_log(message) for message in self.messages() if message["type"] == "log"]

    def log_text(self) -> str:
        return "\n".join(entry.message.rstrip("\n") for entry in self.logs())

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> FunctionLog:
        """The first log message matching the regex `pattern`, waiting for it to arrive.

        A request's log line can reach the platform after its response reached the client.
        """
        regex = re.compile(pattern)

        def found(messages: list[dict[str, Any]]) -> bool:
            return any(
                regex.search(_decode_log(message).message)
                for message in messages
                if message["type"] == "log"
            )

        self._ipc.wait(found, timeout)
        for entry in self.logs():
            if regex.search(entry.message):
                return entry
        raise AssertionError(
            f"no log of {self.name} matches {pattern!r} within {timeout} s:\n{self.log_text()}"
        )

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Wait until every request the function started has sent its ``end`` message."""

        def idle(messages: list[dict[str, Any]]) -> bool:
            kinds = [message["type"] for message in messages]
            return kinds.count("handler-started") == kinds.count("end")

        if not idle(self._ipc.wait(idle, timeout)):
            raise AssertionError(f"{self.name} still has requests running after {timeout} s")

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")


def _decode_log(message: dict[str, Any]) -> FunctionLog:
    payload = message["payload"]
    return FunctionLog(
        base64.b64decode(payload.get("message", "")).decode(errors="replace"),
        payload.get("level") or payload.get("stream") or "",
        int(payload.get("context", {}).get("requestId", 0)),
    )


def function_environment(
    entrypoint: Path, ipc_path: Path, settings: Mapping[str, str], root: Path = PROJECT_ROOT
) -> dict[str, str]:
    """What the platform sets for a Python function, with `settings` as ``CREV_<NAME>``."""
    relative = entrypoint.relative_to(root)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CREV_", "VERCEL", "__VC_"))
    }
    env.update({f"CREV_{name.upper()}": value for name, value in settings.items()})
    env.update(
        {
            "VERCEL": "1",
            "VERCEL_ENV": "production",
            "VERCEL_IPC_PATH": str(ipc_path),
            "__VC_HANDLER_ENTRYPOINT": relative.as_posix(),
            "__VC_HANDLER_ENTRYPOINT_ABS": str(entrypoint),
            "__VC_HANDLER_MODULE_NAME": ".".join(relative.with_suffix("").parts),
            "__VC_HANDLER_VARIABLE_NAME": "handler",
        }
    )
    return env


@contextlib.contextmanager
def run_function(
    name: str,
    workdir: Path,
    root: Path = PROJECT_ROOT,
    *,
    interpreter: Sequence[str] = (sys.executable,),
    environment: Mapping[str, str] | None = None,
    **settings: str,
) -> Iterator[VercelFunction]:
    """Run ``api/<name>.py`` under ``vercel_runtime.vc_init`` in production (IPC) mode, with
    `interpreter` (the project's venv by default; a bare Python for a built bundle) and
    `environment` on top of what the platform sets."""
    entrypoint = root / "api" / f"{name}.py"
    if not entrypoint.is_file():
        raise FileNotFoundError(entrypoint)
    workdir.mkdir(parents=True, exist_ok=True)
    # A Unix socket path is limited to ~100 bytes, which pytest's temporary paths can exceed.
    socket_dir = Path(tempfile.mkdtemp(prefix="vc-ipc-"))
    ipc = _IpcListener(socket_dir / "ipc.sock")
    output_path = workdir / f"{name}-output.log"
    process: subprocess.Popen[bytes] | None = None
    try:
        with output_path.open("wb") as output:
            # `-m` puts the working directory on sys.path, as /var/task is on Vercel.
            process = subprocess.Popen(
                [*interpreter, "-m", "vercel_runtime.vc_init"],
                cwd=root,
                env={
                    **function_environment(entrypoint, ipc.path, settings, root),
                    **(environment or {}),
                },
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        function = _started(name, process, ipc, output_path)
        yield function
    finally:
        if process is not None:
            stop_process(process, STOP_TIMEOUT_S)
        ipc.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _started(
    name: str, process: subprocess.Popen[bytes], ipc: _IpcListener, output_path: Path
) -> VercelFunction:
    def problem(reason: str) -> RuntimeError:
        messages = "\n".join(json.dumps(message) for message in ipc.messages())
        output = output_path.read_text(errors="replace")
        return RuntimeError(
            f"api/{name}.py under vc_init {reason}\nIPC:\n{messages}\noutput:\n{output}"
        )

    try:
        ipc.accept(process, START_TIMEOUT_S)
    except RuntimeError as error:
        raise problem(str(error)) from None
    messages = ipc.wait(
        lambda received: any(
            message["type"] in ("server-started", "unrecoverable-error", "closed")
            for message in received
        ),
        START_TIMEOUT_S,
    )
    for message in messages:
        if message["type"] == "server-started":
            return VercelFunction(
                name, int(message["payload"]["httpPort"]), process, output_path, ipc
            )
    raise problem("did not start")


# ----------------------------------------------------------------------------------- the edge


class EdgeRoute(NamedTuple):
    pattern: re.Pattern[str]
    function: str  # "/api/v2"


def load_edge_routes(root: Path = PROJECT_ROOT) -> list[EdgeRoute]:
    """Functions at ``/api/<name>`` (the filesystem comes first on Vercel), then the rewrites
    of ``vercel.json``, as the local server reads them."""
    return [EdgeRoute(path.pattern, path.destination) for path in load_function_paths(root)]


class EdgeRecord(NamedTuple):
    """One request the edge forwarded (or refused, with `function` None)."""

    method: str
    path: str
    function: str | None
    status: int
    request_id: int


class EdgeServer(StandInServer):
    def __init__(self, routes: list[EdgeRoute], ports: Mapping[str, int]) -> None:
        super().__init__(_EdgeHandler, name="vercel-edge")
        self.routes = routes
        self.ports = dict(ports)  # "/api/v2" -> the function's HTTP port
        self.records: list[EdgeRecord] = []
        self._request_ids = itertools.count(1)
        self._lock = threading.Lock()

    def function_for(self, path: str) -> str | None:
        for route in self.routes:
            if route.pattern.fullmatch(path):
                return route.function
        return None

    def next_request_id(self) -> int:
        with self._lock:
            return next(self._request_ids)

    def record(self, entry: EdgeRecord) -> None:
        with self._lock:
            self.records.append(entry)


class _EdgeHandler(AnyMethodHandler):
    """Silent: tests read `EdgeServer.records` instead."""

    server: EdgeServer

    def serve(self) -> None:
        path = self.path.partition("?")[0]
        function = self.server.function_for(path)
        if function is None:
            self._answer_plain(404, "The page could not be found\n\nNOT_FOUND\n")
            self.server.record(EdgeRecord(self.command, path, None, 404, 0))
            return
        request_id = self.server.next_request_id()
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.server.ports[function], timeout=FUNCTION_TIMEOUT_S
        )
        try:
            try:
                self._send_request(connection, request_id)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                self.close_connection = True
                self._answer_plain(502, f"An error occurred with this application.\n\n{error}\n")
                self.server.record(EdgeRecord(self.command, path, function, 502, request_id))
                return
            self.server.record(
                EdgeRecord(self.command, path, function, response.status, request_id)
            )
            self._relay_response(response)
        finally:
            connection.close()

    def _send_request(self, connection: http.client.HTTPConnection, request_id: int) -> None:
        connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in end_to_end(self.headers.items()):
            lowered = name.lower()
            if lowered == "content-length" or lowered.startswith(
                ("x-forwarded-", "x-vercel-", "x-real-ip")
            ):
                continue
            connection.putheader(name, value)
        # The edge's own view of the request, replacing whatever the client claimed.
        connection.putheader("X-Forwarded-Host", self.headers.get("Host", self.server.host))
        connection.putheader("X-Forwarded-Proto", "http")
        connection.putheader("X-Forwarded-For", self.client_address[0])
        connection.putheader("X-Real-Ip", self.client_address[0])
        # vc_init takes these for the request's log context and strips them.
        connection.putheader("x-vercel-internal-request-id", str(request_id))
        connection.putheader("x-vercel-internal-invocation-id", f"edge-{request_id}")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            self._relay_chunked_body(connection)
        elif length is not None and length.strip().isdigit():
            connection.putheader("Content-Length", length.strip())
            connection.endheaders()
            self._relay_bytes(connection, int(length), "mid-body")
        else:
            connection.endheaders()

    def _relay_bytes(self, connection: http.client.HTTPConnection, count: int, where: str) -> None:
        """Send the client's next `count` bytes on as they come, never holding them all."""
        while count:
            chunk = self.rfile.read(min(count, CHUNK_SIZE))
            if not chunk:
                raise ConnectionError(f"client closed {where}")
            connection.send(chunk)
            count -= len(chunk)

    def _relay_chunked_body(self, connection: http.client.HTTPConnection) -> None:
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise ConnectionError("bad chunk size line from the client")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (dropped) end at an empty line.
                while self.rfile.readline(8192).strip():
                    pass
                connection.send(b"0\r\n\r\n")
                return
            connection.send(b"%x\r\n" % size)
            self._relay_bytes(connection, size, "mid-chunk")
            self.rfile.readline(3)  # the CRLF after the chunk
            connection.send(b"\r\n")

    def _relay_response(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        chunked = not no_body and length is None
        for name, value in response.getheaders():
            lowered = name.lower()
            if lowered in HOP_BY_HOP or lowered.startswith(_INTERNAL_PREFIX):
                continue
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if response.will_close:
            self.close_connection = True
        self.end_headers()
        if no_body:
            return
        try:
            while chunk := response.read1(CHUNK_SIZE):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if response.length:  # bytes still owed under the function's Content-Length
                raise http.client.IncompleteRead(b"", response.length)
        except (OSError, http.client.HTTPException):
            # The function cut its answer short: cut the client's connection too, so a
            # truncated body is never presented as complete.
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _answer_plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@contextlib.contextmanager
def run_edge(ports: Mapping[str, int], root: Path = PROJECT_ROOT) -> Iterator[EdgeServer]:
    """The edge on a free port of 127.0.0.1, forwarding to functions by route ("/api/v2")."""
    routes = load_edge_routes(root)
    missing = {route.function for route in routes} - set(ports)
    if missing:
        raise ValueError(f"no running function for {sorted(missing)}")
    with EdgeServer(routes, ports) as server:
        yield server


@dataclass
class VercelApp:
    """Every function of the project under vc_init, behind the edge at `host`."""

    edge: EdgeServer
    functions: dict[str, VercelFunction]  # by name: "v2", "token"

    @property
    def host(self) -> str:
        return self.edge.host

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def log_text(self) -> str:
        return "\n".join(function.log_text() for function in self.functions.values())


@contextlib.contextmanager
def run_vercel_app(
    workdir: Path, root: Path = PROJECT_ROOT, **settings: str
) -> Iterator[VercelApp]:
    """Start each ``api/*.py`` under vc_init with `settings` (``CREV_<NAME>``), and the edge."""
    with contextlib.ExitStack() as stack:
        functions = {
            path.stem: stack.enter_context(run_function(path.stem, workdir, root, **settings))
            for path in sorted((root / "api").glob("*.py"))
        }
        ports = {function.route: function.port for function in functions.values()}
        edge = stack.enter_context(run_edge(ports, root))
        yield VercelApp(edge, functions)
