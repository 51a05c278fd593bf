"""`vercel build` with the pinned CLI on a clean copy of the project, and the functions it built
materialized from their `.vc-config.json` `filePathMap`: exactly what `vercel deploy` uploads.

The CLI builds offline with `uv` and a Python 3.12 `python3` on PATH (PyPI must be reachable for
the dependencies) and a `.vercel/project.json` naming any project: nothing is sent to Vercel.
It builds in the environment Vercel's own build of a deployment has: the project's
`vercel.json` `build.env` (which `vercel deploy` sends with the deployment) set, which a local
`vercel build` would otherwise ignore.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tools import skip_or_fail_under_ci

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VERCEL_CLI = PROJECT_ROOT / "tests" / "vercel-cli" / "node_modules" / ".bin" / "vercel"
BUILD_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class BuiltFunction:
    name: str  # "v2", "token", "page"
    config: dict[str, Any]  # its .vc-config.json
    project: Path  # the clean copy it was built from

    @property
    def files(self) -> dict[str, Path]:
        """Bundle path -> the file it is made of."""
        return {
            bundled: Path(source) if os.path.isabs(source) else self.project / source
            for bundled, source in self.config["filePathMap"].items()
        }

    def size(self, prefix: str = "") -> int:
        files = self.files.items()
        return sum(path.stat().st_size for name, path in files if name.startswith(prefix))

    def materialize(self, destination: Path) -> Path:
        """The function's files in a directory of their own, as Lambda unpacks them."""
        for bundled, source in self.files.items():
            target = destination / bundled
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return destination


@dataclass(frozen=True)
class BuildOutput:
    project: Path
    output: Path  # .vercel/output

    @property
    def static_files(self) -> list[str]:
        static = self.output / "static"
        return sorted(str(p.relative_to(static)) for p in static.rglob("*") if p.is_file())

    @property
    def routes(self) -> list[dict[str, Any]]:
        return json.loads((self.output / "config.json").read_text())["routes"]

    def function(self, name: str) -> BuiltFunction:
        config_path = self.output / "functions" / "api" / f"{name}.func" / ".vc-config.json"
        return BuiltFunction(name, json.loads(config_path.read_text()), self.project)


def clean_copy(destination: Path, root: Path = PROJECT_ROOT) -> Path:
    """The files git tracks (as a clone has them), plus untracked ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = root / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def _uv() -> str | None:
    beside_python = Path(sys.executable).parent / "uv"
    return str(beside_python) if beside_python.exists() else shutil.which("uv")


def require_vercel_cli(command: str) -> None:
    """Skip the calling test (fail under CI) unless the pinned CLI can run `command` here."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not VERCEL_CLI.exists():
        missing.append("the Vercel CLI (npm install --prefix tests/vercel-cli)")
    if _uv() is None:
        missing.append("uv (requirements-dev.txt)")
    if sys.version_info[:2] != (3, 12):
        missing.append("Python 3.12 (.python-version)")
    if missing:
        skip_or_fail_under_ci(f"{command} needs {', '.join(missing)}")


def build_tools(directory: Path) -> Path:
    """`python3` (3.12, as `.python-version` asks) and `uv` for the CLI's Python builder."""
    directory.mkdir(parents=True, exist_ok=True)
    python = Path(sys._base_executable).resolve()
    for name in ("python3", "python3.12"):
        (directory / name).symlink_to(python)
    (directory / "uv").symlink_to(_uv() or "uv")
    return directory


def deployment_build_env(project: Path) -> dict[str, str]:
    """The `build.env` of the project's `vercel.json`. `vercel deploy` sends it with the
    deployment and Vercel builds with it; `vercel build` on a machine reads only
    `.vercel/.env.<target>.local`, so the build here is given it as Vercel's would be."""
    config = json.loads((project / "vercel.json").read_text())
    return dict(config.get("build", {}).get("env", {}))


def cli_environment(tools: Path, build_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the Vercel CLI runs in: `tools` first on PATH, none of crev's settings
    or another virtual environment's, no telemetry or update check; then `build_env`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CREV_", "VERCEL", "UV_", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "PATH": f"{tools}{os.pathsep}{env.get('PATH', '')}",
            "VERCEL_TELEMETRY_DISABLED": "1",
            "NO_UPDATE_NOTIFIER": "1",
        }
    )
    env.update(build_env or {})
    return env


def vercel_build(
    workdir: Path, root: Path = PROJECT_ROOT, *, untracked: dict[str, str] | None = None
) -> BuildOutput:
    """`vercel build` of a clean copy of the checkout at `root`, under `workdir`, with the
    `untracked` files (path -> text) a developer's checkout may hold beside it."""
    project = clean_copy(workdir / "project", root)
    for name, text in (untracked or {}).items():
        (project / name).write_text(text)
    (project / ".vercel").mkdir()
    (project / ".vercel" / "project.json").write_text(
        json.dumps({"projectId": "x", "orgId": "y", "settings": {"framework": None}})
    )
    env = cli_environment(build_tools(workdir / "bin"), deployment_build_env(project))
    result = subprocess.run(
        [str(VERCEL_CLI), "build", "--yes", "--global-config", str(workdir / "global-config")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"vercel build failed:\n{result.stdout}\n{result.stderr}")
    return BuildOutput(project, project / ".vercel" / "output")
