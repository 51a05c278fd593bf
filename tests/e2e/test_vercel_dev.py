"""Pull through `vercel dev --local`: the pinned Vercel CLI builds crev's functions with its own
Python builder (uv, Python 3.12, `vercel-runtime` from PyPI) and serves them, with no Vercel
account and no network beyond the package registries.

Needs `npm install --prefix tests/vercel-cli` (the CLI, pinned by its lock) and `uv`
(requirements-dev.txt). `vercel dev` answers through its Lambda emulation, which buffers each
response whole: fine for the small image pulled here, not a test of streaming (see
test_vercel_runtime.py for that).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig import PushedImage, TestRegistry
from rig.crev_process import serving_acme
from rig.vercel_build import PROJECT_ROOT, VERCEL_CLI, require_vercel_cli
from tests.support.layouts import copy_to_oci, missing_blobs
from tests.support.vercel_dev import VercelDev, run_vercel_dev

# The first request to each function builds it: uv resolves and installs its dependencies.
BUILD_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def vercel_dev(
    registry: TestRegistry,
    images: dict[str, PushedImage],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VercelDev]:
    require_vercel_cli("vercel dev")
    with run_vercel_dev(
        tmp_path_factory.mktemp("vercel-dev"), **serving_acme(registry.host)
    ) as dev:
        yield dev


def test_vercel_dev_builds_and_serves_both_functions(vercel_dev: VercelDev) -> None:
    with httpx.Client(base_url=vercel_dev.url, timeout=BUILD_TIMEOUT_S) as client:
        challenge = client.get("/v2/")
        assert challenge.status_code == 401, vercel_dev.log()
        # vercel dev itself answered, and told the function the origin the client used.
        assert challenge.headers["server"] == "Vercel"
        assert "x-vercel-id" in challenge.headers
        assert (
            f'realm="http://{vercel_dev.host}/api/token"' in challenge.headers["www-authenticate"]
        )
        token = client.get("/api/token", params={"scope": "repository:tool:pull"})
        assert token.status_code == 200, vercel_dev.log()
        assert token.json()["token"]
    log = vercel_dev.log()
    assert "Built @vercel/python" in log
    assert "api/v2.py" in log and "api/token.py" in log


def test_pull_through_vercel_dev_gives_the_pushed_digest(
    vercel_dev: VercelDev, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    tool = images["tool"]
    index = copy_to_oci(
        f"docker://{vercel_dev.host}/tool:1",
        tmp_path / "tool",
        "--preserve-digests",
        timeout=BUILD_TIMEOUT_S,
    )
    assert index["manifests"][0]["digest"] == tool.digest
    assert not missing_blobs(tmp_path / "tool", tool.blobs)


def test_the_runtime_tested_is_the_one_the_cli_deploys() -> None:
    require_vercel_cli("vercel dev")
    builder = VERCEL_CLI.parents[1] / "@vercel" / "python" / "dist" / "index.js"
    pinned = re.search(r'VERCEL_RUNTIME_VERSION = "([^"]+)"', builder.read_text())
    assert pinned, builder
    requirements = (PROJECT_ROOT / "requirements-dev.txt").read_text()
    assert f"vercel-runtime=={pinned[1]}\n" in requirements


def test_the_builder_finds_functions_and_dependencies() -> None:
    """The CLI's framework detection takes any `pyproject.toml` for a single Python app and
    then ignores `api/`; its Python builder installs from `pyproject.toml`, not from
    `requirements.txt`, when both exist."""
    assert json.loads((PROJECT_ROOT / "vercel.json").read_text())["framework"] is None
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    requirements = [
        line.strip()
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(pyproject["project"]["dependencies"]) == sorted(requirements)
