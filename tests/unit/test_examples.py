"""The example `vercel.json` files: same routing as the project's, valid settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crev.config import Settings
from crev.server import PROJECT_ROOT

EXAMPLES = sorted((PROJECT_ROOT / "examples").glob("*/vercel.json"))


def test_there_is_an_example_for_each_mode() -> None:
    modes = {path.parent.name for path in EXAMPLES}
    assert {"single-upstream", "docker-hub", "routes", "private-upstream", "push"} <= modes


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.parent.name)
def test_example_routes_like_the_project_and_parses(path: Path) -> None:
    example = json.loads(path.read_text())
    project = json.loads((PROJECT_ROOT / "vercel.json").read_text())
    assert example["rewrites"] == project["rewrites"]
    # What a deployment publishes and bundles, as in the root file (see test_vercel_build).
    assert example["outputDirectory"] == project["outputDirectory"] == "public"
    assert example["functions"] == project["functions"]
    # The build compiles every module (VERCEL_PYTHON_COMPILEALL): see test_vercel_build.
    assert example["build"] == project["build"] == {"env": {"VERCEL_PYTHON_COMPILEALL": "1"}}
    assert "cleanUrls" not in example and "trailingSlash" not in example
    # What the README says to add with `vercel env add`, for the example that needs it.
    secrets = {"CREV_UPSTREAM_USERNAME": "bot", "CREV_UPSTREAM_PASSWORD": "added-with-vercel-env"}
    env = {**example["env"], **(secrets if path.parent.name == "private-upstream" else {})}
    settings = Settings.from_env(env)
    assert settings.routes.routes


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.parent.name)
def test_no_example_commits_a_secret(path: Path) -> None:
    env = json.loads(path.read_text()).get("env", {})
    secret_names = [name for name in env if name.endswith(("_PASSWORD", "_TOKEN", "_USERNAME"))]
    assert secret_names == [], f"{path}: set {secret_names} with `vercel env add`"
