"""The local server's routing (crev/server.py): the functions of `api/` at their own paths, then
the rewrites of `vercel.json`, as Vercel applies them. Starting and stopping it is
tests/handler/test_local_server.py's; a `vercel.json` it cannot follow, test_cli.py's."""

from __future__ import annotations

import json
from pathlib import Path

from crev.server import PROJECT_ROOT, load_rewrites


def test_routes_follow_vercel_json(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    for name in ("v2", "token"):
        (tmp_path / "api" / f"{name}.py").write_text(
            (PROJECT_ROOT / "api" / f"{name}.py").read_text()
        )
    (tmp_path / "vercel.json").write_text(
        json.dumps({"rewrites": [{"source": "/registry/:path*", "destination": "/api/v2"}]})
    )
    rewrites = load_rewrites(tmp_path)
    sources = [rewrite.source for rewrite in rewrites]
    # As on Vercel, functions answer at their own paths before any rewrite applies.
    assert sources == ["/api/token", "/api/v2", "/registry/:path*"]
    assert [rewrite.destination for rewrite in rewrites] == ["/api/token", "/api/v2", "/api/v2"]
    assert rewrites[2].pattern.fullmatch("/registry/v2/x")
    assert not rewrites[2].pattern.fullmatch("/v2/x")


def test_project_rewrites_send_each_path_to_its_function() -> None:
    rewrites = load_rewrites()

    def function_for(path: str) -> str:
        for rewrite in rewrites:
            if rewrite.pattern.fullmatch(path):
                return rewrite.function.__name__
        return "none"

    for path in ("/v2", "/v2/", "/v2/tool/manifests/1", "/v2/_catalog"):
        assert function_for(path) == "serve_registry", path
    for path in ("/", "/tool", "/team/tool", "/v20", "/v2x/y", "/apix"):
        assert function_for(path) == "serve_page", path
    assert function_for("/api/token") == "serve_token"
    assert function_for("/api/v2") == "serve_registry"
