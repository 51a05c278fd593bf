"""The page for people in a real browser (headless Chromium), served from the real registry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rig import PushedImage, require_binaries
from rig.crev_process import CrevProcess

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium") or "chromium"
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
        check=True,
    )


def test_repository_page_renders_tags_and_pull_line(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    require_binaries("chromium")
    url = f"{crev_process.url}/many"
    dom = chromium(tmp_path, "--dump-dom", url).stdout
    assert f"<h1>{crev_process.host}/many</h1>" in dom
    assert f"docker pull {crev_process.host}/many:tag-119" in dom
    assert "Tags (120)" in dom
    screenshot = tmp_path / "many.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1000,700", url)
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # A blank page compresses to a few KiB; a rendered table of tags is far larger.
    assert len(png) > 20_000


def test_home_page_renders_in_a_browser(crev_process: CrevProcess, tmp_path: Path) -> None:
    require_binaries("chromium")
    dom = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/").stdout
    assert f"docker pull {crev_process.host}/NAME:TAG" in dom
    assert "/acme/NAME</code>" in dom


def test_private_and_missing_repositories_say_so_in_a_browser(
    crev_process: CrevProcess, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    require_binaries("chromium")
    private = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/private/secret").stdout
    assert "This repository is private. Log in to pull it." in private
    assert f"docker pull {crev_process.host}/private/secret:TAG" in private
    missing = chromium(tmp_path, "--dump-dom", f"{crev_process.url}/no/such/thing").stdout
    assert "There is no such repository." in missing
    assert "docker pull" not in missing
    screenshot = tmp_path / "private.png"
    chromium(
        tmp_path,
        f"--screenshot={screenshot}",
        "--window-size=1000,500",
        f"{crev_process.url}/private/secret",
    )
    assert len(screenshot.read_bytes()) > 10_000
