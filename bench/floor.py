"""The libraries' floor under a warm manifest request (`python -m bench floor`).

A server made of the pieces crev answers with, and nothing else: `http.server`'s threading
server and `BaseHTTPRequestHandler`, h11 reading the request and framing the answer, an httpx
client sending it on to the same TLS upstream (the registry behind nginx) and the small body
relayed back. No routing, no name mapping, no logging, no header rewriting, no error handling.
Its CPU per warm manifest GET and HEAD, measured as the comparison measures crev's (user +
system of the server process over sequential requests on one keep-alive client), is what
http.server, h11 and httpx cost before crev does anything; crev runs beside it on the same
front, rounds interleaved, so the difference is crev's own.

Two floors: `client` sends with `httpx.Client.send` (the client's auth flow and redirect loop
around the transport), `transport` hands the request to `httpx.HTTPTransport.handle_request`,
as crev's upstream client does.

The server alone: `python -m bench.floor serve UPSTREAM CA_FILE client|transport`; it prints
its port.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import h11
import httpx

Via = Literal["client", "transport"]
VIA: tuple[Via, ...] = ("client", "transport")


# ------------------------------------------------------------------------------ the server


Send = Callable[[httpx.Request], httpx.Response]


def handler_for(upstream: str, send: Send) -> type[BaseHTTPRequestHandler]:
    """A handler that forwards each request to `upstream` through `send` (an httpx request to
    a streamed httpx response) and relays the answer as it came."""

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as crev's handler

        def write(self, data: bytes | None) -> None:
            if data:
                self.wfile.write(data)

        def handle_one_request(self) -> None:
            head = self.rfile.readline(65537)
            if not head:
                self.close_connection = True
                return
            while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                head += line
            connection = h11.Connection(h11.SERVER)
            connection.receive_data(head + b"\r\n")
            request = connection.next_event()
            assert isinstance(request, h11.Request)
            connection.next_event()  # the end of a request without a body
            sent = httpx.Request(
                request.method.decode("ascii"),
                upstream + request.target.decode("ascii"),
                headers=[(name, value) for name, value in request.headers if name != b"host"],
            )
            response = send(sent)
            try:
                self.write(
                    connection.send(
                        h11.Response(
                            status_code=response.status_code,
                            headers=response.headers.raw,
                            reason=response.reason_phrase.encode("ascii"),
                        )
                    )
                )
                for chunk in response.iter_raw():
                    self.write(connection.send(h11.Data(data=chunk)))
                self.write(connection.send(h11.EndOfMessage()))
            finally:
                response.close()
            self.wfile.flush()
            self.close_connection = connection.our_state is not h11.DONE

    return Forward


def serve(upstream: str, ca_file: str, via: Via) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    send: Send
    if via == "client":
        client = httpx.Client(verify=context, timeout=30)
        send = functools.partial(client.send, stream=True)
    else:
        send = httpx.HTTPTransport(verify=context).handle_request
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(upstream, send))
    print(server.server_address[1], flush=True)
    server.serve_forever()


@contextlib.contextmanager
def floor_server(upstream: str, ca_file: Path, via: Via) -> Iterator[tuple[str, int]]:
    """The floor server in a process of its own: its host and pid."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "serve", upstream, str(ca_file), via],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


# ------------------------------------------------------------------------------ the measurement


def run(args: argparse.Namespace) -> int:
    """CPU per warm manifest GET and HEAD of the floor servers and of crev, through the same
    TLS front, rounds interleaved."""
    from rig import push_small_image, start_test_registry
    from rig.images import MANIFEST_ACCEPT

    from .probes import median, process_cpu_seconds, timed_requests
    from .testbed import PREFIX, tls_upstream

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="crev-floor-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            registry = stack.enter_context(start_test_registry(workdir / "registry"))
            push_small_image(registry, f"{PREFIX}/tool", "1")
            front, crev = stack.enter_context(tls_upstream(registry, workdir))
            upstream = f"https://{front.host}"
            servers: dict[str, tuple[str, int, str]] = {
                "crev": (crev.host, crev.process.pid, "/v2/tool/manifests/1")
            }
            for via in VIA:
                host, pid = stack.enter_context(floor_server(upstream, front.ca_file, via))
                servers[f"floor ({via})"] = (host, pid, f"/v2/{PREFIX}/tool/manifests/1")
            token = registry.token(f"repository:{PREFIX}/tool:pull")
            headers = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}
            clients = {name: httpx.Client(timeout=30) for name in servers}
            rounds: dict[tuple[str, str], list[float]] = {}
            for name, (host, _, path) in servers.items():  # warm: connections, pools, caches
                timed_requests(clients[name], "GET", f"http://{host}{path}", headers, 50)
            names = list(servers)
            for index in range(args.rounds):
                order = names[index % len(names) :] + names[: index % len(names)]
                for method in ("HEAD", "GET"):
                    for name in order:
                        host, pid, path = servers[name]
                        before = process_cpu_seconds(pid)
                        count = len(
                            timed_requests(
                                clients[name], method, f"http://{host}{path}", headers, args.count
                            )
                        )
                        spent = process_cpu_seconds(pid) - before
                        rounds.setdefault((name, method), []).append(spent * 1000 / count)
            for client in clients.values():
                client.close()
    load_end = os.getloadavg()
    print(f"CPU per warm manifest request, TLS upstream (nginx), {args.count} per round (ms)")
    for (name, method), values in rounds.items():
        each = ", ".join(f"{value:.3f}" for value in values)
        print(f"  {name:<20} {method:<4} median {median(values):.3f}   rounds: {each}")
    print(
        f"load average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in load_start)} at the start, "
        f"{' '.join(f'{v:.2f}' for v in load_end)} at the end"
    )
    return 0


def add_command(commands: Any) -> None:
    """`python -m bench floor`."""
    floor = commands.add_parser("floor", help=run.__doc__, description=run.__doc__)
    floor.add_argument("--rounds", type=int, default=5, help="rounds, interleaved (5)")
    floor.add_argument("--count", type=int, default=500, help="requests per round and side (500)")
    floor.set_defaults(run=run)


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 5 or sys.argv[4] not in VIA:
        sys.exit("usage: python -m bench.floor serve UPSTREAM CA_FILE client|transport")
    serve(sys.argv[2], sys.argv[3], "client" if sys.argv[4] == "client" else "transport")
