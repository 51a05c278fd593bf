"""A Vercel deployment: what `vercel build` puts in each function bundle, and how fast the
built `api/v2.py` starts cold from it."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rig.vercel_build import BuiltFunction, vercel_build

FUNCTIONS = ("v2", "token", "page")


@dataclass(frozen=True)
class BundleSize:
    name: str  # "v2", "token", "page"
    files: int
    total_bytes: int
    vendor_bytes: int  # `_vendor/`: the packages the builder installed
    pip_bytes: int  # `_vendor/pip`, which the builder seeds and nothing imports
    bytecode_bytes: int  # every `.pyc`, crev's and the packages' (VERCEL_PYTHON_COMPILEALL)

    @property
    def own_bytes(self) -> int:
        """crev's own files and its configuration."""
        return self.total_bytes - self.vendor_bytes


@dataclass(frozen=True)
class Deployment:
    static_files: list[str]
    bundles: list[BundleSize]
    import_seconds: float  # median over `runs` fresh processes
    runs: int


def deployment(root: Path, runs: int) -> Deployment:
    """What does a deployment of the checkout at `root` hold, and how long does a fresh bare
    Python 3.12 (`-S`, `PYTHONPATH=_vendor`, the bytecode the build shipped and no other)
    take to import `api/v2.py` from its bundle?"""
    with tempfile.TemporaryDirectory(prefix="crev-bench-bundle-") as tmp:
        build = vercel_build(Path(tmp), root.resolve())
        bundles = [bundle_size(build.function(name)) for name in FUNCTIONS]
        v2 = build.function("v2")
        seconds = import_time(v2, v2.materialize(Path(tmp) / "v2"), runs)
        return Deployment(build.static_files, bundles, seconds, runs)


def bundle_size(function: BuiltFunction) -> BundleSize:
    return BundleSize(
        function.name,
        len(function.files),
        function.size(),
        function.size("_vendor/"),
        function.size("_vendor/pip"),
        sum(path.stat().st_size for name, path in function.files.items() if name.endswith(".pyc")),
    )


def import_time(function: BuiltFunction, bundle: Path, runs: int) -> float:
    """Median seconds from spawn to exit of a `python -S` that imports `api.v2` in `bundle`."""
    python = str(Path(sys._base_executable).resolve())
    env = {**function.config["environment"], "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import time; t = time.perf_counter(); import api.v2; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [python, "-S", "-c", code], cwd=bundle, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)
