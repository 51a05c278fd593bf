"""Cold start as Vercel does it: a new process loads `api/v2.py` by path and serves its first
answer, as deployed (every module's bytecode shipped), without bytecode, and after the runtime's
own imports; `python -m crev` to its first answer; and which imports the time goes to
(`python -X importtime`).

"As deployed" runs an interpreter holding only the deployment's packages (`bench/runtime_site.py`);
the project's venv, with the development tools, is measured beside it as it was before."""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any

import httpx

from crev.upstream.transport import CA_BUNDLES
from rig import TestRegistry
from rig.crev_process import PROJECT_ROOT, crev_environment, serving_acme
from rig.tools import free_port
from rig.vercel_runtime import run_function

from .plan import Plan
from .probes import log, median
from .runtime_site import runtime_python

# What Vercel's Python runtime does: load the function file by path and serve its `handler`.
# BENCH_PRELOAD names modules imported before the clock starts for the import; after the first
# answer the driver prints which installed packages it loaded.
COLD_DRIVER = """
import time
started = time.perf_counter()
import os
import sys
for name in filter(None, os.environ.get("BENCH_PRELOAD", "").split(",")):
    __import__(name)
preloaded = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("vercel_function", "api/v2.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter()
from http.server import HTTPServer
server = HTTPServer(("127.0.0.1", 0), module.handler)
print(server.server_address[1], (imported - preloaded) * 1000, flush=True)
server.handle_request()
files = (getattr(m, "__file__", None) or "" for m in list(sys.modules.values()))
print(" ".join(sorted({f.split("site-packages/")[1].split("/")[0] for f in files
                       if "site-packages/" in f})), flush=True)
"""

IMPORTTIME_DRIVER = """
import importlib.util
import sys
sys.stderr.write("-- api/v2.py --\\n")
spec = importlib.util.spec_from_file_location("vercel_function", "api/v2.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""

# What Vercel's runtime (vercel_runtime/vc_init.py) has imported before it loads the function.
RUNTIME_PRELOAD = (
    "atexit,base64,contextlib,contextvars,functools,http,http.client,http.server,json,logging,"
    "socket,threading,time,traceback,typing"
)


@dataclass(frozen=True)
class ColdVariant:
    name: str
    label: str
    vendor: bool  # installed packages copied without .pyc, ahead of site-packages
    pycache: bool  # every module's .pyc cached (in a prefix directory)
    preload: str = ""
    # The interpreter: the deployment's packages only, or the project's venv (with the
    # development tools, which a deployment does not hold).
    venv: bool = False


COLD_VARIANTS = (
    # vercel.json sets VERCEL_PYTHON_COMPILEALL=1, so the build ships every module's .pyc.
    ColdVariant("deployed", "as deployed (every module's .pyc shipped)", False, True),
    # What a build without it ships: crev and httpx compiled from source at every cold start.
    ColdVariant("no-bytecode", "without bytecode (no VERCEL_PYTHON_COMPILEALL)", True, False),
    ColdVariant(
        "runtime", "as deployed, after the runtime's imports", False, True, RUNTIME_PRELOAD
    ),
    # What this row measured until the deployment's packages were measured apart.
    ColdVariant("venv", "as deployed, but from the project's venv", False, True, venv=True),
)


def driver_env(registry: TestRegistry, pycache: Path | None = None) -> dict[str, str]:
    """crev's settings for the test registry; with `pycache`, every module's .pyc is written and
    read there, without it nothing is written (installed packages keep the .pyc pip wrote in
    site-packages). None of this process's Python path or bytecode settings carry over."""
    env = {
        name: value
        for name, value in crev_environment(**serving_acme(registry.host, registry.scheme)).items()
        if not name.startswith("BENCH_")
        and name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPATH")
    }
    if registry.ca_file is not None:
        env["SSL_CERT_FILE"] = str(trusting(registry.ca_file))
    if pycache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def trusting(ca_file: Path) -> Path:
    """The system's CA bundle plus the test registry's CA: what crev loads for a TLS upstream
    is then as large as a deployment's CA store, not one certificate."""
    bundle = ca_file.with_name("system-and-test-ca.pem")
    if not bundle.exists():
        system = next((Path(path) for path in CA_BUNDLES if Path(path).is_file()), None)
        system_pem = system.read_bytes() if system is not None else b""
        bundle.write_bytes(system_pem + b"\n" + ca_file.read_bytes())
    return bundle


def variant_env(
    registry: TestRegistry, variant: ColdVariant, workdir: Path, packages: list[str]
) -> dict[str, str]:
    env = driver_env(registry, workdir / "pycache" if variant.pycache else None)
    if variant.vendor:
        vendor = workdir / "vendor"
        if not vendor.exists():
            copy_without_bytecode(packages, vendor)
        env["PYTHONPATH"] = str(vendor)
    if variant.preload:
        env["BENCH_PRELOAD"] = variant.preload
    return env


def copy_without_bytecode(packages: list[str], destination: Path) -> None:
    """Copy installed top-level packages (as the cold-start driver named them) minus .pyc."""
    site = Path(httpx.__file__).resolve().parent.parent
    destination.mkdir(parents=True)
    for name in packages:
        source = site / name
        if source.is_dir() and not name.endswith(".dist-info"):
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("*.pyc"))
        elif source.is_file():
            shutil.copy2(source, destination / name)


def first_answer(port: int, who: str, headers: dict[str, str] | None = None) -> float:
    """Ask `GET /v2/` once on `port` and read the answer, a 401 from the registry through crev:
    the moment it had all arrived (`time.perf_counter`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/v2/", headers={"Connection": "close", **(headers or {})})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    answered = time.perf_counter()
    if response.status != 401:
        raise RuntimeError(f"{who}: /v2/ answered {response.status}, expected 401")
    return answered


def cold_start_once(
    env: dict[str, str], root: Path = PROJECT_ROOT, python: str = sys.executable
) -> dict[str, Any]:
    """Spawn the driver, ask its server for `/v2/` once: times from spawn, the packages it
    loaded."""
    driver = [python, "-c", COLD_DRIVER]
    started = time.perf_counter()
    process = subprocess.Popen(driver, cwd=root, env=env, stdout=PIPE, stderr=PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"cold-start driver failed: {process.communicate()[1]}")
        listening = time.perf_counter()
        port, import_ms = line.split()
        answered = first_answer(int(port), "cold start")
        packages = process.stdout.readline().split()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "first_answer_ms": (answered - started) * 1000,
        "listening_ms": (listening - started) * 1000,
        "import_ms": float(import_ms),
        "packages": packages,
    }


def local_server_once(
    env: dict[str, str], root: Path = PROJECT_ROOT, python: str = sys.executable
) -> float:
    """Milliseconds from spawning `python -m crev` to its first answer to `GET /v2/`, asked
    as soon as its port takes a connection."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [python, "-m", "crev", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=DEVNULL,
        stderr=PIPE,
    )
    try:
        while True:
            try:
                answered = first_answer(port, "python -m crev")
                break
            except ConnectionRefusedError:
                if process.poll() is not None:
                    failure = process.communicate()[1]
                    raise RuntimeError(f"python -m crev failed: {failure}") from None
                time.sleep(0.001)
    finally:
        process.kill()
        process.wait()
    return (answered - started) * 1000


def vercel_runtime_once(
    registry: TestRegistry,
    workdir: Path,
    pycache: Path,
    root: Path = PROJECT_ROOT,
    python: str = sys.executable,
) -> float:
    """Milliseconds from spawning Vercel's runtime on `api/v2.py` (`vercel_runtime.vc_init`,
    as in production, the platform's side of its socket played by tests.support) to its first
    answer to `GET /v2/`, every module's bytecode cached."""
    environment = {"PYTHONPYCACHEPREFIX": str(pycache)}
    if registry.ca_file is not None:
        environment["SSL_CERT_FILE"] = str(trusting(registry.ca_file))
    settings = serving_acme(registry.host, registry.scheme)
    started = time.perf_counter()
    # What the edge adds to every request it forwards (rig/vercel_runtime.py).
    internal = {"x-vercel-internal-request-id": "1", "x-vercel-internal-invocation-id": "1"}
    with run_function(
        "v2", workdir, root, interpreter=(python,), environment=environment, **settings
    ) as function:
        answered = first_answer(function.port, "vc_init", internal)
    return (answered - started) * 1000


def bare_python_ms(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], cwd=PROJECT_ROOT, env=env, check=True)
    return (time.perf_counter() - started) * 1000


def parse_importtime(stderr: str) -> list[dict[str, Any]]:
    """`-X importtime` lines after the marker, each with its parent (lines come children first)."""
    lines = stderr.split("-- api/v2.py --\n", 1)[-1].splitlines()
    entries: list[dict[str, Any]] = []
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")
    for line in lines:
        match = pattern.match(line)
        if not match:
            continue
        depth = len(match[3]) // 2
        entry = {
            "name": match[4],
            "self_us": int(match[1]),
            "cum_us": int(match[2]),
            "depth": depth,
        }
        for child in pending.pop(depth + 1, []):
            child["parent"] = entry["name"]
        pending[depth].append(entry)
        entries.append(entry)
    return entries


def importtime_breakdown(
    env: dict[str, str], runs: int, root: Path = PROJECT_ROOT, python: str = sys.executable
) -> dict[str, Any]:
    """Median over runs of: total, self time by top-level package, what crev's modules import."""
    totals: list[float] = []
    by_package: dict[str, list[float]] = defaultdict(list)
    pulled_in: dict[str, list[float]] = defaultdict(list)
    by_module: dict[str, list[float]] = defaultdict(list)
    importer: dict[str, str] = {}
    for _ in range(runs):
        result = subprocess.run(
            [python, "-X", "importtime", "-c", IMPORTTIME_DRIVER],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        entries = parse_importtime(result.stderr)
        totals.append(sum(e["cum_us"] for e in entries if e["depth"] == 0) / 1000)
        packages: Counter[str] = Counter()
        for entry in entries:
            packages[entry["name"].split(".")[0]] += entry["self_us"]
        for package, micros in packages.items():
            by_package[package].append(micros / 1000)
        for entry in entries:
            by_module[entry["name"]].append(entry["self_us"] / 1000)
            parent = entry.get("parent", "")
            if parent.startswith("crev") and not entry["name"].startswith("crev"):
                pulled_in[entry["name"]].append(entry["cum_us"] / 1000)
                importer[entry["name"]] = parent
    package_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in by_package.items()}
    pulled_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in pulled_in.items()}
    module_ms = {name: median(v + [0.0] * (runs - len(v))) for name, v in by_module.items()}
    crev_self = sum(ms for name, ms in module_ms.items() if name.split(".")[0] == "crev")
    return {
        "total_ms": median(totals),
        "self_ms_by_package": dict(sorted(package_ms.items(), key=lambda kv: -kv[1])),
        "crev_self_ms": crev_self,
        "self_ms_by_module": dict(sorted(module_ms.items(), key=lambda kv: -kv[1])[:20]),
        "imported_by_crev_ms": {
            name: {"cum_ms": ms, "imported_by": importer[name]}
            for name, ms in sorted(pulled_ms.items(), key=lambda kv: -kv[1])
        },
    }


def cold_start(
    registry: TestRegistry, plan: Plan, workdir: Path, root: Path = PROJECT_ROOT
) -> dict[str, Any]:
    """How long from spawn to the first answer, in each variant and for `python -m crev`, and
    which imports take it? `root`: the checkout measured (this one unless told)."""
    deployment = str(runtime_python(workdir / "deployment-venv"))

    def python_of(variant: ColdVariant) -> str:
        return sys.executable if variant.venv else deployment

    # A first spawn warms the page cache and names the installed packages crev loads.
    packages = cold_start_once(driver_env(registry), root, deployment)["packages"]
    envs = {v.name: variant_env(registry, v, workdir, packages) for v in COLD_VARIANTS}
    local_env = driver_env(registry, workdir / "pycache")
    for variant in COLD_VARIANTS:
        # Warm up; the precompiled ones write every .pyc here.
        cold_start_once(envs[variant.name], root, python_of(variant))
    local_server_once(local_env, root)
    local_server_once(local_env, root, deployment)
    vercel_runtime_once(registry, workdir / "vc-init", workdir / "pycache", root, deployment)
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in COLD_VARIANTS}
    local: list[float] = []
    local_deployment: list[float] = []
    under_runtime: list[float] = []
    for _ in range(plan.cold_spawns):  # interleaved, so load spikes hit every variant alike
        for variant in COLD_VARIANTS:
            runs[variant.name].append(cold_start_once(envs[variant.name], root, python_of(variant)))
        local.append(local_server_once(local_env, root))
        local_deployment.append(local_server_once(local_env, root, deployment))
        under_runtime.append(
            vercel_runtime_once(
                registry, workdir / "vc-init", workdir / "pycache", root, deployment
            )
        )
    result: dict[str, Any] = {"packages": packages}
    for variant in COLD_VARIANTS:
        result[variant.name] = {
            "label": variant.label,
            **{
                key: median([run[key] for run in runs[variant.name]])
                for key in ("first_answer_ms", "listening_ms", "import_ms")
            },
            "rounds": [
                {k: v for k, v in run.items() if k != "packages"} for run in runs[variant.name]
            ],
        }
    result["local_server"] = {"first_answer_ms": median(local), "rounds": local}
    result["local_server_deployment"] = {
        "first_answer_ms": median(local_deployment),
        "rounds": local_deployment,
    }
    result["vercel_runtime"] = {"first_answer_ms": median(under_runtime), "rounds": under_runtime}
    bare_env = driver_env(registry)
    result["bare_python_ms"] = median([bare_python_ms(bare_env) for _ in range(plan.cold_spawns)])
    result["importtime"] = importtime_breakdown(
        envs["deployed"], plan.importtime_runs, root, deployment
    )
    log(
        "cold start: first answer "
        + ", ".join(f"{v.name} {result[v.name]['first_answer_ms']:.0f} ms" for v in COLD_VARIANTS)
        + f"; under vc_init {result['vercel_runtime']['first_answer_ms']:.0f} ms"
        + f"; python -m crev {result['local_server']['first_answer_ms']:.0f} ms"
        + f" (runtime-only {result['local_server_deployment']['first_answer_ms']:.0f} ms)"
        + f"; bare python {result['bare_python_ms']:.0f} ms"
    )
    return result
