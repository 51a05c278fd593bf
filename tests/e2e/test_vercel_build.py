"""What Vercel deploys: `vercel build` with the pinned CLI on a clean copy of the project, then
pulls through the functions it built, each run from its own bundle on a bare Python 3.12 (`-S`:
no site-packages, only the bundle's `_vendor` on PYTHONPATH, as `.vc-config.json` sets it). A
dependency or a file a function needs but its bundle lacks fails here, not in production.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rig import PushedImage, TestRegistry, skopeo
from rig.crev_process import serving_acme
from rig.vercel_build import BuildOutput, require_vercel_cli, vercel_build
from rig.vercel_runtime import run_edge, run_function

FUNCTIONS = ("v2", "token", "page")
# What a bundle may hold besides `api/`, `crev/` and `_vendor/`: the files the builder reads.
CONFIG_FILES = {".python-version", "pyproject.toml", "requirements.txt", "uv.lock", "vercel.json"}
# The builder seeds pip into the virtual environment it vendors from (`uv venv --seed`) and
# bundles every installed distribution; `excludeFiles` filters project files only.
BUILDER_SEEDED = {"pip"}
DEVELOPER_FILES = {
    ".env": "CREV_UPSTREAM_PASSWORD=not-for-a-bundle\n",
    ".env.local": "CREV_UPSTREAM_PASSWORD=not-for-a-bundle\n",
}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> BuildOutput:
    require_vercel_cli("vercel build")
    # The settings a developer keeps for `vercel dev`: a `vercel build` then `vercel deploy
    # --prebuilt` must not ship them (the file sets below are asserted exactly).
    return vercel_build(tmp_path_factory.mktemp("vercel-build"), untracked=DEVELOPER_FILES)


def test_the_static_output_publishes_no_project_file(build: BuildOutput) -> None:
    published = sorted(
        p.relative_to(build.project / "public").as_posix()
        for p in (build.project / "public").rglob("*")
        if p.is_file()
    )
    assert build.static_files == published == ["robots.txt"]


def distribution_names(directories: set[str]) -> set[str]:
    return {
        canonicalize_name(re.sub(r"-[^-]+\.dist-info$", "", name))
        for name in directories
        if name.endswith(".dist-info")
    }


def requirement_closure() -> set[str]:
    """crev's declared dependencies, what they require in turn on this Python, and the runtime
    Vercel adds."""
    declared = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pending = [Requirement(spec) for spec in declared["project"]["dependencies"]]
    pending.append(Requirement("vercel-runtime"))
    names: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in names or (requirement.marker and not requirement.marker.evaluate({"extra": ""})):
            continue
        names.add(name)
        pending += [Requirement(text) for text in requires(name) or []]
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_bundle_carries_only_what_it_runs(build: BuildOutput, name: str) -> None:
    function = build.function(name)
    # Every module's bytecode is beside it (the next test); here, what the sources are.
    files = {path: source for path, source in function.files.items() if "__pycache__/" not in path}
    top = {path.split("/")[0] for path in files}
    assert top - {"api", "crev", "_vendor"} == CONFIG_FILES, sorted(top)
    assert {path for path in files if path.startswith("api/")} == {f"api/{f}.py" for f in FUNCTIONS}
    crev = build.project / "crev"
    project_crev = {path.relative_to(crev).as_posix() for path in crev.rglob("*.py")}
    assert {
        path.removeprefix("crev/") for path in files if path.startswith("crev/")
    } == project_crev
    vendored = {path.split("/")[1] for path in files if path.startswith("_vendor/")}
    assert distribution_names(vendored) - BUILDER_SEEDED == requirement_closure()
    assert function.config["environment"]["PYTHONPATH"] == "_vendor"
    # The platform's default (300 s with fluid compute, on Hobby and Pro alike; see README);
    # `vercel dev` of the pinned CLI refuses a `maxDuration` in vercel.json.
    assert "maxDuration" not in function.config
    # The file set is asserted exactly above; this bound catches a large file among them (a data
    # file or a stray artifact). crev's sources with their bytecode passed 512 KiB once signed
    # URLs, mirrors and the page's details came in, so the bound is twice that.
    assert function.size() - function.size("_vendor/") < 1024 * 1024


def bytecode_path(source: str) -> str:
    """Where this Python looks for a module's bytecode beside its source (PEP 3147)."""
    folder, _, file = source.rpartition("/")
    cached = f"__pycache__/{file.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"
    return f"{folder}/{cached}" if folder else cached


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_bundle_ships_the_bytecode_of_every_module(build: BuildOutput, name: str) -> None:
    # vercel.json's `build.env` turns on the builder's compileall (VERCEL_PYTHON_COMPILEALL),
    # so no cold start compiles crev or its packages from source.
    files = build.function(name).files
    sources = {path for path in files if path.endswith(".py")}
    assert {f"api/{name}.py", "crev/upstream/__init__.py", "_vendor/httpx/_client.py"} <= sources
    for source in sorted(sources):
        assert bytecode_path(source) in files, f"no bytecode for {source}"
        header = files[bytecode_path(source)].read_bytes()[:16]
        # PEP 552: hash-based and unchecked (flags 0b01), so it is used whatever the file
        # times are once unpacked; and it is the bytecode of this very source.
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(header[4:8], "little") == 0b01, source
        assert header[8:] == importlib.util.source_hash(files[source].read_bytes()), source


def test_the_built_function_imports_nothing_from_source(build: BuildOutput, tmp_path: Path) -> None:
    function = build.function("v2")
    root = function.materialize(tmp_path / "v2")
    imported = subprocess.run(
        [str(Path(sys._base_executable).resolve()), "-S", "-v", "-c", "import api.v2"],
        cwd=root,
        env=dict(function.config["environment"]),
        capture_output=True,
        text=True,
        check=True,
    )
    # `-v` says where each module's code came from: 'x.pyc' (quoted), or x.py it compiled.
    loaded = re.findall(r"^# code object from '?(.+?)'?$", imported.stderr, re.MULTILINE)
    from_bundle = {
        (root / path).resolve().relative_to(root.resolve()).as_posix()
        for path in loaded
        if (root / path).resolve().is_relative_to(root.resolve())
    }
    first_answer = (
        "api/v2.py",
        "crev/upstream/__init__.py",
        "_vendor/httpx/_client.py",
        "_vendor/h11/_util.py",
    )
    assert {bytecode_path(source) for source in first_answer} <= from_bundle
    assert sorted(path for path in from_bundle if not path.endswith(".pyc")) == []


def test_the_routes_send_each_path_to_its_function(build: BuildOutput) -> None:
    rewrites = [
        (re.compile(route["src"]), route["dest"])
        for route in build.routes
        if "dest" in route and "src" in route and route.get("check")
    ]

    def destination(path: str) -> str | None:
        return next((dest for pattern, dest in rewrites if pattern.fullmatch(path)), None)

    for path in ("/v2", "/v2/", "/v2/tool/manifests/1", "/v2/a/b/blobs/sha256:0"):
        assert destination(path) == "/api/v2", path
    for path in ("/", "/tool", "/team/tool"):
        assert destination(path) == "/api/page", path
    assert destination("/api/token") is None  # a function's own path, served as it is
    assert (build.output / "functions" / "api" / "token.func").is_dir()
    # Files before rewrites: only public/ is there, so no project file shadows a route.
    assert build.routes[0] == {"handle": "filesystem"}


@contextlib.contextmanager
def built_app(build: BuildOutput, workdir: Path, **settings: str) -> Iterator[str]:
    bare = [str(Path(sys._base_executable).resolve()), "-S"]
    with contextlib.ExitStack() as stack:
        ports = {}
        for name in FUNCTIONS:
            root = build.function(name).materialize(workdir / name)
            running = stack.enter_context(
                run_function(
                    name,
                    workdir / f"{name}-run",
                    root,
                    interpreter=bare,
                    environment=dict(build.function(name).config["environment"]),
                    **settings,
                )
            )
            ports[running.route] = running.port
        edge = stack.enter_context(run_edge(ports, build.project))
        yield edge.host


def test_pulls_through_the_built_functions(
    build: BuildOutput, registry: TestRegistry, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    with built_app(build, tmp_path / "app", **serving_acme(registry.host)) as host:
        tool, private = images["tool"], images["private"]
        skopeo("copy", "--src-tls-verify=false", f"docker://{host}/tool:1", f"dir:{tmp_path}/tool")
        assert (tmp_path / "tool" / "manifest.json").read_bytes() == tool.manifest
        skopeo(
            "copy",
            "--src-tls-verify=false",
            registry.creds_arg("src-"),
            f"docker://{host}/private/secret:1",
            f"dir:{tmp_path}/private",
        )
        assert (tmp_path / "private" / "manifest.json").read_bytes() == private.manifest
        inspected = json.loads(
            skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/tool:1").stdout
        )
        assert inspected["schemaVersion"] == 2
