"""The local server's routing (crev/server.py): the functions of `api/` at their own paths, then
the rewrites of `vercel.json`, as Vercel applies them. Starting and stopping it is
tests/handler/test_local_server.py's; a `vercel.json` it cannot follow, test_cli.py's."""

from __future__ import annotations

import json
from pathlib import Path

from crev.server import PROJECT_ROOT, load_function_paths


def test_routes_follow_vercel_json(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    for name in ("v2", "token"):
        (tmp_path / "api" / f"{name}.py").write_text(
            (PROJECT_ROOT / "api" / f"{name}.py").read_text()
        )
    (tmp_path / "vercel.json").write_text(
        json.dumps({"rewrites": [{"source": "/registry/:path*", "destination": "/api/v2"}]})
    )
    paths = load_function_paths(tmp_path)
    sources = [served.source for served in paths]
    # As on Vercel, functions answer at their own paths before any rewrite applies.
    assert sources == ["/api/token", "/api/v2", "/registry/:path*"]
    assert [served.destination for served in paths] == ["/api/token", "/api/v2", "/api/v2"]
    assert paths[2].pattern.fullmatch("/registry/v2/x")
    assert not paths[2].pattern.fullmatch("/v2/x")


def test_project_rewrites_send_each_path_to_its_function() -> None:
    paths = load_function_paths()

    def function_for(path: str) -> str:
        for served in paths:
            if served.pattern.fullmatch(path):
                return served.function.__name__
        return "none"

    for path in ("/v2", "/v2/", "/v2/tool/manifests/1", "/v2/_catalog"):
        assert function_for(path) == "serve_registry", path
    for path in ("/", "/tool", "/team/tool", "/v20", "/v2x/y", "/apix"):
        assert function_for(path) == "serve_page", path
    assert function_for("/api/token") == "serve_token"
    assert function_for("/api/v2") == "serve_registry"
