"""What a Vercel deployment of crev holds, and how fast its built function starts cold.

    .venv/bin/python bench/bundle.py                 # this checkout
    .venv/bin/python bench/bundle.py --root ../old   # another checkout, for a before/after

Runs `vercel build` with the pinned CLI on a clean copy (`tests/support/vercel_build.py`), then
prints the static files, each function bundle's file count and size (crev's own files, the
vendored packages, and the pip the builder seeds), and the cold start of `api/v2.py` from its
materialized bundle on a bare Python 3.12 (`-S`, `PYTHONPATH=_vendor`, no bytecode: as deployed
unless `VERCEL_PYTHON_COMPILEALL=1`): the median time to import it, over `--runs` fresh
processes. Figures go to `bench/README.md`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.vercel_build import PROJECT_ROOT, BuiltFunction, vercel_build  # noqa: E402

MiB = 1024 * 1024


def import_time(function: BuiltFunction, bundle: Path, runs: int) -> float:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="checkout to build")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crev-bench-bundle-") as tmp:
        build = vercel_build(Path(tmp), args.root.resolve())
        print(f"static files: {len(build.static_files)} {build.static_files[:8]}")
        for name in ("v2", "token", "page"):
            function = build.function(name)
            files = function.files
            vendor = function.size("_vendor/")
            own = function.size() - vendor
            print(
                f"api/{name}.func: {len(files)} files, {function.size() / MiB:.2f} MiB "
                f"(crev and config {own / 1024:.0f} KiB, _vendor {vendor / MiB:.2f} MiB, "
                f"of which pip {function.size('_vendor/pip') / MiB:.2f} MiB)"
            )
        v2 = build.function("v2")
        bundle = v2.materialize(Path(tmp) / "v2")
        print(
            f"cold start, a fresh python -S importing api/v2.py from its bundle, no bytecode, "
            f"spawn to exit: "
            f"{import_time(v2, bundle, args.runs) * 1000:.0f} ms (median of {args.runs})"
        )


if __name__ == "__main__":
    main()
