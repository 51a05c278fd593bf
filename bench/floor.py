"""The libraries' floors beside crev (`python -m bench floor`).

A server made of the pieces crev answers with, and nothing else: `http.server`'s threading
server and `BaseHTTPRequestHandler`, h11 reading the request and framing the answer, httpx
sending it on upstream and the body streamed back as it comes, piece by piece. No routing, no
name mapping, no challenge or header rewriting, no token endpoint, no logging; only what any
relay must do: hop-by-hop headers stay on their hop (skopeo asks every request with
`Connection: close`), and a request h11 cannot read (skopeo tries TLS first) is refused at
once. Its CPU, measured as the comparison measures crev's (user + system of the server
process), is what http.server, h11 and httpx cost before crev does anything; crev runs beside
it on the same upstream, rounds interleaved, so the difference is crev's own:

- per warm manifest GET and HEAD (sequential requests on one keep-alive client, TLS upstream);
- per `skopeo copy` of the 8-layer image, plain and TLS upstream: skopeo pulls the `acme/`
  name through the floor and, as a 401 passes through unchanged, asks the registry's own realm
  for its token;
- and beneath them, in-process, reading and writing the eight layers (`bench/relay_floor.py`).

Three ways to send: `client` with `httpx.Client.send` (the client's auth flow and redirect
loop around the transport), `transport` with `httpx.HTTPTransport.handle_request` (httpx's
transport as it ships), `crev-client` with crev's upstream client (the same transport over
crev's read stream, `crev.upstream.transport.new_client`).

The server alone: `python -m bench.floor serve UPSTREAM CA_FILE client|transport|crev-client`;
it prints its port.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import h11
import httpx

if TYPE_CHECKING:  # the server process imports none of the rig
    from rig import TestRegistry
    from rig.crev_process import CrevProcess
    from rig.nginx_front import NginxFront

Via = Literal["client", "transport", "crev-client"]
VIA: tuple[Via, ...] = ("client", "transport", "crev-client")


# ------------------------------------------------------------------------------ the server


Send = Callable[[httpx.Request], httpx.Response]
# What no relay passes on (RFC 9110 7.6.1), and the host, which is the upstream's: skopeo asks
# every request with `Connection: close`, which would close each upstream connection too.
HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade")
) | {b"host"}


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
            if head[:2] == b"\x16\x03":
                # skopeo tries TLS first on a plain port: refused at once (h11 cannot read it),
                # as crev refuses it, without waiting for header lines that never come.
                head += b"\r\n"
            else:
                while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                    head += line
            connection = h11.Connection(h11.SERVER)
            connection.receive_data(head + b"\r\n")
            try:
                request = connection.next_event()
            except h11.RemoteProtocolError:
                self.refuse(connection, "not an HTTP/1.1 request")
                return
            if not isinstance(request, h11.Request):  # the client hung up within the head
                self.close_connection = True
                return
            if not isinstance(connection.next_event(), h11.EndOfMessage):
                # A pull sends no request body; a floor that relayed bodies would cost more.
                self.refuse(connection, "the floor relays requests without a body")
                return
            sent = httpx.Request(
                request.method.decode("ascii"),
                upstream + request.target.decode("ascii"),
                headers=[(name, value) for name, value in request.headers if name not in HOP],
            )
            response = send(sent)
            try:
                self.write(
                    connection.send(
                        h11.Response(
                            status_code=response.status_code,
                            headers=[
                                (name, value)
                                for name, value in response.headers.raw
                                if name.lower() not in HOP
                            ],
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

        def refuse(self, connection: h11.Connection, why: str) -> None:
            """A 400 framed by h11, and the connection closed."""
            body = why.encode("ascii")
            headers = [("content-length", str(len(body))), ("connection", "close")]
            response = h11.Response(status_code=400, headers=headers)
            self.write(connection.send(response))
            self.write(connection.send(h11.Data(data=body)))
            self.wfile.flush()
            self.close_connection = True

    return Forward


def serve(upstream: str, ca_file: str, via: Via) -> None:
    context = ssl.create_default_context(cafile=ca_file)
    # Connections kept as crev keeps its own (httpx's default closes them after 5 s idle).
    limits = httpx.Limits(max_keepalive_connections=64, keepalive_expiry=30)
    send: Send
    if via == "client":
        client = httpx.Client(verify=context, timeout=30, limits=limits)
        send = functools.partial(client.send, stream=True)
    elif via == "transport":
        send = httpx.HTTPTransport(verify=context, limits=limits).handle_request
    else:
        from crev.upstream.transport import new_client

        upstream_client = new_client(lambda: context)
        send = functools.partial(upstream_client.send, stream=True)
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

PARTS = ("manifest", "pull", "relay")
# The floor servers a whole pull goes through beside crev.
COPY_FLOORS: tuple[tuple[Via, str], ...] = (
    ("transport", "floor, httpx's transport"),
    ("crev-client", "floor, crev's client"),
)
LoadAverage = tuple[float, float, float]


def load_line(start: LoadAverage, end: LoadAverage) -> str:
    return (
        f"  load average (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in start)} at the start, "
        f"{' '.join(f'{v:.2f}' for v in end)} at the end"
    )


def run(args: argparse.Namespace) -> int:
    """The libraries' floors beside crev, rounds interleaved: CPU per warm manifest GET and
    HEAD (TLS upstream), CPU per `skopeo copy` of the 8-layer image (plain and TLS upstream),
    and in-process, CPU per pass over its eight layers read from the upstream and written to
    a client."""
    from rig import push_small_image, start_test_registry
    from rig.crev_process import crev_for

    from .testbed import EIGHT_LAYER_SIZES, PREFIX, push_copy_image, tls_upstream

    parts = [part for part in PARTS if part in args.parts.split(",")]
    with tempfile.TemporaryDirectory(prefix="crev-floor-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            registry = stack.enter_context(start_test_registry(workdir / "registry"))
            push_small_image(registry, f"{PREFIX}/tool", "1")
            image = push_copy_image(registry, f"{PREFIX}/eight", "1", EIGHT_LAYER_SIZES, seed=8)
            front, tls_crev = stack.enter_context(tls_upstream(registry, workdir))
            plain_crev = stack.enter_context(crev_for(registry, workdir / "crev-plain"))
            bed = Bed(registry, front, {"plain": plain_crev, "TLS": tls_crev}, workdir, stack)
            if "manifest" in parts:
                print("\n".join(manifest_floor(bed, args.rounds, args.count)), flush=True)
            if "pull" in parts:
                print("\n".join(pull_floor(bed, image, args.rounds, args.copies)), flush=True)
            if "relay" in parts:
                print("\n".join(relay_floors(bed, image, args.rounds, args.passes)), flush=True)
    return 0


@dataclass(frozen=True)
class Bed:
    """The registry, nginx in front of it, a crev in front of each, and where to put more."""

    registry: TestRegistry
    front: NginxFront
    crevs: dict[str, CrevProcess]  # by upstream: "plain", "TLS"
    workdir: Path
    stack: contextlib.ExitStack

    def origin(self, upstream: str) -> str:
        return f"http://{self.registry.host}" if upstream == "plain" else self.front.url


def manifest_floor(bed: Bed, rounds_count: int, count: int) -> list[str]:
    """CPU per warm manifest GET and HEAD of the floor servers and of crev, through the TLS
    front, rounds interleaved."""
    from rig.images import MANIFEST_ACCEPT

    from .probes import median, process_cpu_seconds, timed_requests
    from .testbed import PREFIX

    load_start = os.getloadavg()
    crev = bed.crevs["TLS"]
    servers: dict[str, tuple[str, int, str]] = {
        "crev": (crev.host, crev.process.pid, "/v2/tool/manifests/1")
    }
    for via in VIA:
        host, pid = bed.stack.enter_context(floor_server(bed.origin("TLS"), bed.front.ca_file, via))
        servers[f"floor ({via})"] = (host, pid, f"/v2/{PREFIX}/tool/manifests/1")
    token = bed.registry.token(f"repository:{PREFIX}/tool:pull")
    headers = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}
    clients = {name: httpx.Client(timeout=30) for name in servers}
    rounds: dict[tuple[str, str], list[float]] = {}
    for name, (host, _, path) in servers.items():  # warm: connections, pools, caches
        timed_requests(clients[name], "GET", f"http://{host}{path}", headers, 50)
    names = list(servers)
    for index in range(rounds_count):
        order = names[index % len(names) :] + names[: index % len(names)]
        for method in ("HEAD", "GET"):
            for name in order:
                host, pid, path = servers[name]
                before = process_cpu_seconds(pid)
                done = len(
                    timed_requests(clients[name], method, f"http://{host}{path}", headers, count)
                )
                spent = process_cpu_seconds(pid) - before
                rounds.setdefault((name, method), []).append(spent * 1000 / done)
    for client in clients.values():
        client.close()
    lines = [f"CPU per warm manifest request, TLS upstream (nginx), {count} per round (ms)"]
    for (name, method), values in rounds.items():
        each = ", ".join(f"{value:.3f}" for value in values)
        lines.append(f"  {name:<20} {method:<4} median {median(values):.3f}   rounds: {each}")
    return [*lines, load_line(load_start, os.getloadavg())]


def pull_floor(bed: Bed, image: str, rounds_count: int, copies: int) -> list[str]:
    """CPU (user + system of the server process) per `skopeo copy` of the 8-layer image through
    crev and through the floor servers, from each upstream, rounds interleaved, with each one's
    median copy time over the same copy straight from the upstream (issue 31's ratio). skopeo
    pulls the `acme/` name through a floor and asks the token of the registry's own realm (the
    floor rewrites nothing); through crev it asks crev's token endpoint, which asks the realm."""
    from .probes import median, process_cpu_seconds, timed_copy
    from .testbed import PREFIX

    lines = [
        f"CPU per skopeo copy of 8 layers of 2 MiB, {copies} copies per round "
        "(ms; the copy's median wall time, and its ratio to the direct copy's, after it)"
    ]
    for upstream, crev in bed.crevs.items():
        load_start = os.getloadavg()
        direct = urlsplit(bed.origin(upstream)).netloc
        # The copy straight from the upstream has no server of its own to measure: wall only.
        servers: dict[str, tuple[str, int | None]] = {
            "direct (no proxy)": (f"{direct}/{PREFIX}/{image}:1", None),
            "crev": (f"{crev.host}/{image}:1", crev.process.pid),
        }
        for via, label in COPY_FLOORS:
            host, pid = bed.stack.enter_context(
                floor_server(bed.origin(upstream), bed.front.ca_file, via)
            )
            servers[label] = (f"{host}/{PREFIX}/{image}:1", pid)

        def copy(reference: str) -> float:
            destination = Path(tempfile.mkdtemp(prefix="copy-", dir=bed.workdir))
            try:
                return timed_copy(reference, destination)
            finally:
                shutil.rmtree(destination)

        for reference, _ in servers.values():  # warm: connections, pools, caches
            copy(reference)
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        wall: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        for index in range(rounds_count):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                reference, pid = servers[name]
                before = process_cpu_seconds(pid) if pid is not None else 0.0
                wall[name] += [copy(reference) for _ in range(copies)]
                if pid is not None:
                    cpu[name].append((process_cpu_seconds(pid) - before) * 1000 / copies)
        lines.append(f"  {upstream} upstream")
        direct_wall = median(wall["direct (no proxy)"])
        for name in names:
            each = ", ".join(f"{value:.1f}" for value in cpu[name])
            spent = f"median {median(cpu[name]):6.1f}   rounds: {each}" if cpu[name] else ""
            lines.append(
                f"    {name:<26} {spent:<48}   ({median(wall[name]):.3f} s, "
                f"{median(wall[name]) / direct_wall:.2f}x direct)"
            )
        lines.append(load_line(load_start, os.getloadavg()))
    return lines


def relay_floors(bed: Bed, image: str, rounds: int, passes: int) -> list[str]:
    """In-process, CPU per pass over the 8-layer image's layers: reading them from the upstream
    and writing them to a client, each way by itself and together (bench/relay_floor.py)."""
    from rig.images import MANIFEST_ACCEPT

    from . import relay_floor
    from .testbed import PREFIX

    name = f"{PREFIX}/{image}"
    token = bed.registry.token(f"repository:{name}:pull")
    auth = {"Authorization": f"Bearer {token}"}
    lines = [f"CPU per pass over the eight layers (16 MiB), in-process, {passes} per round (ms)"]
    for upstream in bed.crevs:
        load_start = os.getloadavg()
        context = (
            None if upstream == "plain" else ssl.create_default_context(cafile=bed.front.ca_file)
        )
        origin = bed.origin(upstream)
        manifest = httpx.get(
            f"{origin}/v2/{name}/manifests/1",
            headers={**auth, "Accept": MANIFEST_ACCEPT},
            verify=context or True,
        ).json()
        paths = [f"/v2/{name}/blobs/{layer['digest']}" for layer in manifest["layers"]]
        figures = relay_floor.measure(
            relay_floor.Upstream(origin, context, paths, auth), rounds, passes
        )
        lines.append(f"  {upstream} upstream")
        lines += ["  " + line for line in relay_floor.render(figures)]
        lines.append(load_line(load_start, os.getloadavg()))
    return lines


def add_command(commands: Any) -> None:
    """`python -m bench floor`."""
    floor = commands.add_parser("floor", help=run.__doc__, description=run.__doc__)
    floor.add_argument("--rounds", type=int, default=5, help="rounds, interleaved (5)")
    floor.add_argument(
        "--count", type=int, default=500, help="manifest requests per round and server (500)"
    )
    floor.add_argument(
        "--copies", type=int, default=4, help="skopeo copies per round and server (4)"
    )
    floor.add_argument(
        "--passes", type=int, default=3, help="in-process passes per round and floor (3)"
    )
    floor.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"what to measure, of {','.join(PARTS)} (all)",
    )
    floor.set_defaults(run=run)


if __name__ == "__main__":
    via = next((via for via in VIA if sys.argv[4:] == [via]), None)
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 5 or via is None:
        sys.exit(f"usage: python -m bench.floor serve UPSTREAM CA_FILE {'|'.join(VIA)}")
    serve(sys.argv[2], sys.argv[3], via)
