"""An interpreter with only what a deployment holds: `requirements.txt`'s packages and what
they require (as the Vercel build and the README's runtime-only install put them), and
Vercel's own `vercel_runtime`, without the development tools of the project's venv.

The venv's extras are not harmless for a cold start: httpx imports its command-line client
when `click` is importable (pulled in by moto and flask for the tests), which costs a cold start
about 20 ms that no deployment pays. The packages are copied from the venv, file by file as
their installed records list them, so no index is asked and the versions are the tested ones.
"""

from __future__ import annotations

import compileall
import importlib.metadata
import re
import shutil
import sys
import sysconfig
import venv
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rig.crev_process import PROJECT_ROOT

# What the platform puts beside the bundle: the runtime that loads a function.
PLATFORM = ("vercel-runtime",)


def requirement_names(requirements: Path = PROJECT_ROOT / "requirements.txt") -> list[str]:
    lines = requirements.read_text().splitlines()
    names = (re.match(r"[A-Za-z0-9._-]+", line.strip()) for line in lines)
    return [match[0] for match in names if match and not match.string.lstrip().startswith("#")]


def closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions `names` are, and every one they require (no extras)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        distribution = importlib.metadata.distribution(name)
        found[name] = distribution
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


def runtime_python(directory: Path) -> Path:
    """A venv at `directory` (made once) holding only the deployment's packages, compiled as
    a deployment ships them; its interpreter's path."""
    python = directory / "bin" / "python"
    if python.exists():
        return python
    venv.EnvBuilder(with_pip=False, symlinks=True).create(directory)
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(directory), "platbase": str(directory)})
    )
    for distribution in closure([*requirement_names(), *PLATFORM]):
        for file in distribution.files or []:
            if "__pycache__" in file.parts:
                continue
            source = Path(str(distribution.locate_file(file)))
            target = site / file
            if source.is_file() and target.resolve().is_relative_to(site.resolve()):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    compileall.compile_dir(site, quiet=1)
    return python


if __name__ == "__main__":
    print(runtime_python(Path(sys.argv[1])))
