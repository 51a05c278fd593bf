"""`python -m crev`: serve crev locally, as Vercel would (the registry API at /v2/, the token
endpoint at /api/token, the page for people elsewhere)."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from . import __version__
from .config import Settings
from .errors import ConfigError
from .log import configure_logging, crev_log
from .process import Process
from .server import LocalServer, create_server

DEFAULT_PORT = 8080
# How long stopping waits for the requests in flight: within the shortest grace period the usual
# supervisors give between SIGTERM and SIGKILL (docker stop's 10 s; Kubernetes 30 s, systemd 90 s).
DRAIN_SECONDS = 8.0

SETTINGS_HELP = """\
settings (environment variables; README.md explains each):
  CREV_REGISTRY_HOST     upstream registry host[:port] (default registry-1.docker.io)
  CREV_REPO_PREFIX       namespace the names live under upstream, e.g. acme (default none)
  CREV_REGISTRY_SCHEME   https (default) or http for a local upstream
  CREV_OFFICIAL_IMAGES   1: one-component names are library/NAME (default on for Docker Hub)
  CREV_TOKEN_REALM       the upstream's token realm (default: learned from its challenges)
  CREV_UPSTREAM_USERNAME, CREV_UPSTREAM_PASSWORD or CREV_UPSTREAM_TOKEN
                         server-side upstream credentials for a private upstream
  CREV_PUBLIC            1: public images, no login for clients, edge-cacheable answers
  CREV_FOLLOW_REDIRECTS  1: crev reads blobs from the storage the upstream redirects to
  CREV_FALLBACK_REGISTRY_HOST, CREV_FALLBACK_REPO_PREFIX, CREV_FALLBACK_REGISTRY_SCHEME
                         the registry you are moving away from: reads the upstream does not
                         know go there (needs CREV_PUBLIC=1 or server-side credentials)
  CREV_FALLBACK_UPSTREAM_USERNAME, CREV_FALLBACK_UPSTREAM_PASSWORD or
  CREV_FALLBACK_UPSTREAM_TOKEN
                         server-side credentials for the fallback (default: anonymous)
  CREV_MIRROR_REGISTRY_HOST, CREV_MIRROR_REPO_PREFIX, CREV_MIRROR_REGISTRY_SCHEME
                         a registry with the same images: reads the upstream fails (unreachable,
                         too slow, 5xx, 429) go there (needs CREV_PUBLIC=1 or server-side
                         credentials)
  CREV_MIRROR_UPSTREAM_USERNAME, CREV_MIRROR_UPSTREAM_PASSWORD or CREV_MIRROR_UPSTREAM_TOKEN
                         server-side credentials for the mirror (default: anonymous)
  CREV_FAILOVER_SECONDS  seconds to wait for the upstream's answer before asking a mirror
                         (default 5)
  CREV_ROUTES            several upstreams on one domain (replaces the variables above)
  CREV_TOKEN_URL         where crev's token endpoint is served (default /api/token)
  CREV_UPSTREAM_TIMEOUT  seconds to wait for the upstream (default 30)
  CREV_BROWSER_REDIRECT  send browsers to this URL instead of crev's page
  CREV_ALLOW_PUSH        1: let clients push (default 0: read-only)
  CREV_MAX_BODY_BYTES    the largest request body crev forwards (default: none locally)
  CREV_TAG_CACHE_SECONDS public routes: seconds the edge may keep answers by tag
  PORT                   the port, when --port is not given
"""


class CommandLineError(Exception):
    """A bad option, setting or environment for the local server, said in one line."""


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        # The local server's composition root: one process for every function it serves.
        process = Process()
        settings, warnings = process.read_settings()
        server = _listen(
            args.host, args.port if args.port is not None else _port_from_env(), process
        )
    except ConfigError as error:
        print(f"crev: configuration error: {error}", file=sys.stderr)
        return 2
    except CommandLineError as error:
        print(f"crev: {error}", file=sys.stderr)
        return 2
    for warning in warnings:
        print(f"crev: warning: {warning}", file=sys.stderr)
    configure_logging()
    print(_banner(server, args.host, settings), flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, _Terminated) as stop:
        _drain(server, "SIGTERM" if isinstance(stop, _Terminated) else "Ctrl-C")
    finally:
        server.server_close()
    return 0


class _Terminated(BaseException):
    """SIGTERM arrived (systemd, a container runtime, Kubernetes): stop as on Ctrl-C."""


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _drain(server: LocalServer, why: str) -> None:
    """Stop taking connections, let the requests in flight be answered for a bounded time, and
    say so: a stop is never silent, and never cuts a pull that could have finished."""
    server.socket.close()
    in_flight = server.in_flight.count
    if not in_flight:
        crev_log().info("stopping (%s)", why)
        return
    crev_log().info(
        "stopping (%s): waiting up to %g s for %d request%s in flight",
        why,
        DRAIN_SECONDS,
        in_flight,
        "" if in_flight == 1 else "s",
    )
    cut = server.in_flight.drain(DRAIN_SECONDS)
    if cut:
        crev_log().info(
            "stopped: %d request%s cut after %g s", cut, "" if cut == 1 else "s", DRAIN_SECONDS
        )
    else:
        crev_log().info("stopped: every request answered")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crev",
        description=(
            "Serve crev locally: the registry API at /v2/, its token endpoint at /api/token "
            "and the page for people, at the paths vercel.json rewrites to them on Vercel."
        ),
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port to listen on (default: $PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument("--version", action="version", version=f"crev {__version__}")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _port_from_env() -> int:
    value = os.environ.get("PORT", "").strip()
    if not value:
        return DEFAULT_PORT
    try:
        return _port(value)
    except argparse.ArgumentTypeError:
        raise CommandLineError(f"PORT={value!r} is not a port number (0-65535)") from None


def _listen(host: str, port: int, process: Process) -> LocalServer:
    try:
        return create_server(host, port, process=process)
    except OSError as error:
        reason = {
            errno.EADDRINUSE: "the address is already in use (is another crev running?)",
            errno.EADDRNOTAVAIL: "no interface has that address",
            errno.EACCES: "permission denied (ports below 1024 need root)",
            errno.EAFNOSUPPORT: "this machine has no IPv6",
        }.get(error.errno or 0, error.strerror or str(error))
        raise CommandLineError(f"cannot listen on {_address(host, port)}: {reason}") from None


def _address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets as in a URL."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _banner(server: LocalServer, host: str, settings: Settings) -> str:
    port = server.server_address[1]
    # 0.0.0.0 (or ::) is where crev listens, not an address a client can pull from.
    reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    listening = f"http://{_address(host, port)}" + (
        " (every interface)" if reachable != host else ""
    )
    routes = "\n".join(f"  {route.describe()}" for route in settings.routes.routes)
    pull_from = _address(reachable, port)
    image = f"{pull_from}/{_name_shown(settings)}:TAG"
    if ":" in reachable:
        # containers/image (skopeo, podman) reads no bracketed IPv6 address in an image name.
        skopeo = "skopeo and podman take no IPv6 address in an image name: --host 127.0.0.1"
    else:
        skopeo = f"skopeo inspect --tls-verify=false docker://{image}"
    return (
        f"crev serving on {listening}\n{routes}\n  {_push_shown(settings)}\n"
        f"  pull: {skopeo}\n"
        f"        docker pull {image}   (local registries need no TLS)"
    )


def _name_shown(settings: Settings) -> str:
    """A name crev serves: any name on a catch-all route, else one under the shortest vanity
    prefix (a bare NAME would be refused)."""
    return f"{settings.routes.default.vanity_prefix}NAME"


def _push_shown(settings: Settings) -> str:
    if not settings.allow_push:
        return "push: disabled"
    # Echoed as set: `yes` is as good as `1`, and the line should not claim what was not typed.
    return f"push: enabled (CREV_ALLOW_PUSH={os.environ.get('CREV_ALLOW_PUSH', '').strip()})"


if __name__ == "__main__":
    sys.exit(main())
