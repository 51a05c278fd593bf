"""`python -m crev` as a person meets it: its help, one clear line and exit code 2 for every bad
input, and a banner that says what is served and how to pull."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import crev.__main__ as crev_main
from crev.process import Process
from crev.server import PROJECT_ROOT
from rig import free_port


def crev(*args: str, root: Path = PROJECT_ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREV_") and k != "PORT"}
    return subprocess.run(
        [sys.executable, "-m", "crev", *args],
        cwd=root,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_help_gives_every_option_its_default_and_lists_the_settings() -> None:
    result = crev("--help")
    assert result.returncode == 0
    assert "--host HOST  address to listen on (default: 127.0.0.1" in result.stdout
    assert "--port PORT  port to listen on (default: $PORT, else 8080)" in result.stdout
    for variable in ("CREV_REGISTRY_HOST", "CREV_REPO_PREFIX", "CREV_ROUTES", "CREV_PUBLIC"):
        assert f"\n  {variable}" in result.stdout, variable
    assert "`" not in result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[0].startswith("usage:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


@pytest.mark.parametrize("value", ["abc", "-1", "70000", "80.5"])
def test_a_bad_port_in_the_environment_is_one_line(value: str) -> None:
    line = one_line_error(crev(PORT=value))
    assert line == f"crev: PORT={value!r} is not a port number (0-65535)"


def test_a_bad_port_option_is_argparse_s_usage_and_one_line() -> None:
    line = one_line_error(crev("--port", "abc"))
    assert "--port: 'abc' is not a port number" in line


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_a_port_in_use_is_one_line(taken_port: int) -> None:
    line = one_line_error(crev("--port", str(taken_port)))
    assert line == (
        f"crev: cannot listen on 127.0.0.1:{taken_port}: "
        "the address is already in use (is another crev running?)"
    )


def test_a_bad_setting_is_one_line() -> None:
    line = one_line_error(crev(CREV_UPSTREAM_TIMEOUT="soon"))
    assert line.startswith("crev: configuration error: CREV_UPSTREAM_TIMEOUT='soon'")


def project_with(tmp_path: Path, vercel_json: str) -> Path:
    """A copy of the project (its package and functions) with this `vercel.json`."""
    shutil.copytree(PROJECT_ROOT / "crev", tmp_path / "crev")
    shutil.copytree(PROJECT_ROOT / "api", tmp_path / "api")
    (tmp_path / "vercel.json").write_text(vercel_json)
    return tmp_path


@pytest.mark.parametrize(
    ("vercel_json", "said"),
    [
        ("{", "vercel.json is not valid JSON: Expecting property name enclosed in double quotes"),
        ('{"rewrites": {}}', "vercel.json: 'rewrites' must be a list"),
        ('{"rewrites": [{"source": "/x"}]}', "vercel.json: rewrite {'source': '/x'} needs a"),
        (
            '{"rewrites": [{"source": "/x", "destination": "/api/none"}]}',
            "vercel.json rewrites '/x' to unknown '/api/none'",
        ),
        (
            '{"rewrites": [{"source": "/(x", "destination": "/api/v2"}]}',
            "vercel.json: rewrite source '/(x': missing ), unterminated subpattern",
        ),
    ],
)
def test_a_bad_vercel_json_is_one_line(tmp_path: Path, vercel_json: str, said: str) -> None:
    line = one_line_error(crev(root=project_with(tmp_path, vercel_json)))
    assert line.startswith(f"crev: configuration error: {said}"), line


def test_a_zero_timeout_says_what_is_accepted() -> None:
    line = one_line_error(crev(CREV_UPSTREAM_TIMEOUT="0"))
    assert line == (
        "crev: configuration error: CREV_UPSTREAM_TIMEOUT='0': "
        "must be a number of seconds above 0 and at most 900"
    )


def ipv6_loopback() -> bool:
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_it_listens_on_ipv6_loopback() -> None:
    port = free_port()
    with started("--host", "::1", "--port", str(port)) as shown:
        assert f"crev serving on http://[::1]:{port}\n" in shown
        assert f"docker pull [::1]:{port}/NAME:TAG" in shown
        # skopeo and podman cannot parse docker://[::1]:PORT/...: no such line is offered.
        assert "docker://[" not in shown
        assert "pull: skopeo and podman take no IPv6 address in an image name" in shown
        with socket.create_connection(("::1", port), timeout=10) as conn:
            conn.sendall(b"GET /v2/ HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 ")


def test_an_ipv6_address_no_interface_has_is_one_line() -> None:
    # 2001:db8::/32 is for documentation: no machine has it.
    line = one_line_error(crev("--host", "2001:db8::1", "--port", "8080"))
    assert line in (
        "crev: cannot listen on [2001:db8::1]:8080: no interface has that address",
        "crev: cannot listen on [2001:db8::1]:8080: this machine has no IPv6",
    )


def test_a_machine_without_ipv6_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_ipv6(host: str, port: int, *, process: Process) -> None:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))

    monkeypatch.setattr(crev_main, "create_server", no_ipv6)
    with pytest.raises(crev_main.CommandLineError) as caught:
        crev_main._listen("::1", 8080, Process())
    assert str(caught.value) == "cannot listen on [::1]:8080: this machine has no IPv6"


def test_a_misspelled_setting_is_warned_about_at_start() -> None:
    port = free_port()
    with started("--port", str(port), CREV_REGISTRY="ghcr.io", CREV_PREFIX="acme") as shown:
        assert "NAME -> https://registry-1.docker.io/library/NAME" in shown
    assert shown.stderr.splitlines()[:2] == [
        "crev: warning: CREV_PREFIX is set, but crev has no such setting: it is ignored"
        " (did you mean CREV_REPO_PREFIX?)",
        "crev: warning: CREV_REGISTRY is set, but crev has no such setting: it is ignored"
        " (did you mean CREV_REGISTRY_HOST?)",
    ]
    assert "configuration:" not in shown.stderr, "the warning was given twice"


class Banner(str):
    """What the server printed on stdout up to its pull lines; its stderr once it stopped."""

    stderr = ""


@contextmanager
def started(*args: str, **env: str) -> Iterator[Banner]:
    """A running `python -m crev`, as its banner; stopped with Ctrl-C on leaving."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREV_") and k != "PORT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crev", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        while not lines[-1].lstrip().startswith("docker pull"):
            lines.append(process.stdout.readline())
            assert len(lines) < 20, lines
        shown = Banner("".join(lines))
        yield shown
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    shown.stderr = stderr


def banner(*args: str, **env: str) -> str:
    with started(*args, **env) as shown:
        return str(shown)


def test_the_banner_shows_docker_hub_s_official_images_and_a_pullable_address() -> None:
    port = free_port()
    shown = banner("--host", "0.0.0.0", "--port", str(port))
    assert f"crev serving on http://0.0.0.0:{port} (every interface)" in shown
    assert "NAME -> https://registry-1.docker.io/library/NAME for one-component names" in shown
    assert f"docker pull 127.0.0.1:{port}/NAME:TAG" in shown
    assert "0.0.0.0:" not in shown.split("\n", 1)[1]
    assert "push: disabled" in shown


def test_the_banner_says_when_push_is_enabled_and_shows_the_prefix() -> None:
    port = free_port()
    shown = banner(
        "--port",
        str(port),
        CREV_REGISTRY_HOST="ghcr.io",
        CREV_REPO_PREFIX="acme",
        CREV_ALLOW_PUSH="1",
        CREV_PUBLIC="1",
    )
    assert "NAME -> https://ghcr.io/acme/NAME  (public)" in shown
    assert "push: enabled (CREV_ALLOW_PUSH=1)" in shown


@pytest.mark.parametrize("value", ["1", "yes", "true", "on", "YES"])
def test_the_banner_echoes_push_as_it_was_set(value: str) -> None:
    shown = banner("--port", str(free_port()), CREV_ALLOW_PUSH=value)
    assert f"  push: enabled (CREV_ALLOW_PUSH={value})\n" in shown


@pytest.mark.parametrize("value", ["0", "no", "off", "false"])
def test_the_banner_says_push_is_disabled_for_each_off_value(value: str) -> None:
    assert "  push: disabled\n" in banner("--port", str(free_port()), CREV_ALLOW_PUSH=value)


def test_a_push_setting_crev_does_not_know_is_refused() -> None:
    line = one_line_error(crev(CREV_ALLOW_PUSH="maybe"))
    assert line == (
        "crev: configuration error: CREV_ALLOW_PUSH='maybe': "
        "must be 1 or 0 (true/false, yes/no, on/off)"
    )


def test_routes_without_a_catch_all_show_a_name_crev_serves() -> None:
    port, unreachable = free_port(), free_port()
    routes = (
        f"tools/=http://127.0.0.1:{unreachable}/acme/tools, "
        f"tools/beta/=http://127.0.0.1:{unreachable}/acme/beta"
    )
    with started("--port", str(port), CREV_ROUTES=routes) as shown:
        assert f"docker pull 127.0.0.1:{port}/tools/NAME:TAG" in shown
        assert f"docker://127.0.0.1:{port}/tools/NAME:TAG" in shown
        ask = f"http://127.0.0.1:{port}/v2/{{}}/manifests/1"
        # The banner's name reaches a route (whose upstream is down here: a 502)...
        assert httpx.get(ask.format("tools/cli"), timeout=30).status_code == 502
        # ...where the bare NAME it used to show is refused.
        refused = httpx.get(ask.format("cli"), timeout=30)
        assert refused.status_code == 404
        assert refused.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_a_catch_all_route_shows_a_bare_name() -> None:
    port = free_port()
    shown = banner("--port", str(port), CREV_ROUTES="tools/=ghcr.io/acme/tools, =ghcr.io/acme")
    assert f"docker pull 127.0.0.1:{port}/NAME:TAG" in shown


def test_version_is_the_project_s() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    result = crev("--version")
    assert result.returncode == 0
    assert result.stdout == f"crev {project['version']}\n"
