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
    assert "cleanUrls" not in example and "trailingSlash" not in example
    settings = Settings.from_env(example["env"])
    assert settings.routes.routes
