"""The README's "Try it under `vercel dev`" section, run as written on a clean copy of the project:
its commands, against the plain registry of the section before it, give the transcript it shows,
and crev's request lines show in `vercel dev`'s terminal.

Two things differ from a person's run, both said here: the CLI the section's first line installs
is the one `.ci/run` installed with that same line (tests/unit/test_readme.py checks the line
is .ci/run's), and the addresses (the registry's 127.0.0.1:5055, `vercel dev`'s 127.0.0.1:3000)
and the CLI's own fixed ports and global configuration are ones of the test's, since other
tests and servers share the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig.images import build_small_image, write_oci_layout
from rig.tools import free_port, require_binaries, skopeo
from rig.vercel_build import PROJECT_ROOT, clean_copy, require_vercel_cli
from tests.support.readme import section, sh_blocks, transcript
from tests.support.vercel_dev import VercelDev, stop_group, wait_until_ready

SECTION = "Try it under `vercel dev`"
README_REGISTRY = "127.0.0.1:5055"
README_DEV = "127.0.0.1:3000"
INSTALL_LINE = "npm install --prefix tests/vercel-cli"
# The first request to a function builds it: uv resolves and installs its dependencies.
BUILD_TIMEOUT_S = 180.0
# What the README shows of crev's line in `vercel dev`'s terminal, the time aside.
REQUEST_LINE = re.compile(r"GET /v2/hello/tags/list 200\s+upstream=200 \d+\.\dms")


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry without auth, as the README's offline section runs it, holding
    `acme/hello:1`."""
    require_binaries("docker-registry", "skopeo")
    workdir = tmp_path_factory.mktemp("plain-registry")
    host = f"127.0.0.1:{free_port()}"
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}}}\n"
        f"http: {{addr: {host}}}\n"
    )
    with (workdir / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(f"http://{host}/v2/", process)
        built = build_small_image("hello:1")
        layout = write_oci_layout(workdir / "hello", "1", built.manifest, built.blobs)
        skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{host}/acme/hello:1"
        )
        yield host
    finally:
        process.terminate()
        process.wait(10)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, "docker-registry exited"
        try:
            httpx.get(url, timeout=1).raise_for_status()
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer at {url}")


def the_sections_commands() -> list[str]:
    commands = sh_blocks(section(SECTION))[0].splitlines()
    assert commands[0] == INSTALL_LINE
    return commands


@pytest.fixture(scope="module")
def readme_vercel_dev(
    plain_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VercelDev]:
    require_vercel_cli("vercel dev")
    workdir = tmp_path_factory.mktemp("readme-vercel-dev")
    project = clean_copy(workdir / "project")
    # What the section's first line installed, as .ci/run installed it with the same line.
    (project / "tests" / "vercel-cli" / "node_modules").symlink_to(
        PROJECT_ROOT / "tests" / "vercel-cli" / "node_modules"
    )
    # What `./scripts/setup` made: the venv these tests run in.
    (project / ".venv").symlink_to(sys.prefix)
    dev_host = f"127.0.0.1:{free_port()}"
    script = []
    for line in the_sections_commands()[1:]:
        line = line.replace(README_REGISTRY, plain_registry).replace(README_DEV, dev_host)
        if line.startswith("vercel dev "):
            # Its global configuration and its queue, cache and schedule servers' fixed ports,
            # kept apart from any other `vercel dev` on the machine.
            line = (
                "exec "
                + line
                + " "
                + " ".join(
                    [
                        f"--global-config {workdir / 'global-config'}",
                        f"--queue-port {free_port()}",
                        f"--runtime-cache-port {free_port()}",
                        f"--schedules-port {free_port()}",
                    ]
                )
            )
        script.append(line)
    assert script[-1].startswith("exec vercel dev "), script
    # The shell's CREV_* variables would not reach the functions anyway: `.env` does.
    env = {name: value for name, value in os.environ.items() if not name.startswith("CREV_")}
    log_path = workdir / "vercel-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "-euc", "\n".join(script)],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = VercelDev(dev_host, process, log_path)
    try:
        wait_until_ready(dev)
        yield dev
    finally:
        stop_group(process)


def test_the_sections_transcript_is_what_its_commands_answer(
    readme_vercel_dev: VercelDev,
) -> None:
    shown = transcript(sh_blocks(section(SECTION))[1])
    assert [command.split()[0] for command, _ in shown] == ["curl", "skopeo"]
    for command, output in shown:
        answered = subprocess.run(
            ["bash", "-c", command.replace(README_DEV, readme_vercel_dev.host)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        assert answered.returncode == 0, (answered.stderr, readme_vercel_dev.log())
        expected = output.replace(README_DEV, readme_vercel_dev.host)
        assert answered.stdout.rstrip("\n") == expected.rstrip("\n"), readme_vercel_dev.log()


def test_crev_s_request_lines_show_in_vercel_dev_s_terminal(
    readme_vercel_dev: VercelDev,
) -> None:
    said = " ".join(section(SECTION).split())
    (example,) = re.findall(r"shows crev's line for each request \(`([^`]+)`\)", said)
    assert REQUEST_LINE.fullmatch(example)
    httpx.get(f"{readme_vercel_dev.url}/v2/hello/tags/list", timeout=BUILD_TIMEOUT_S)
    deadline = time.monotonic() + 10
    while not REQUEST_LINE.search(readme_vercel_dev.log()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert REQUEST_LINE.search(readme_vercel_dev.log()), readme_vercel_dev.log()


@pytest.mark.parametrize("name", [".env", ".env.local", ".env.development.local"])
def test_settings_files_are_neither_committed_nor_uploaded(name: str, tmp_path: Path) -> None:
    ignored_by_git = subprocess.run(
        ["git", "check-ignore", "-q", name], cwd=PROJECT_ROOT, check=False
    )
    assert ignored_by_git.returncode == 0, f"git would commit {name}"
    # `vercel deploy` reads .vercelignore with .gitignore's rules: ask git to apply them.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text((PROJECT_ROOT / ".vercelignore").read_text())
    uploaded = subprocess.run(["git", "check-ignore", "-q", name], cwd=tmp_path, check=False)
    assert uploaded.returncode == 0, f"vercel deploy would upload {name}"
