"""A stand-in registry on pytest-httpserver for handler tests of routes with several upstreams
(a fallback, mirrors): answers by request path, `404 NAME_UNKNOWN` for the rest, and a record
of what it was asked."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator

from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response as WerkzeugResponse

DIGEST = "sha256:" + "a" * 64
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"

Answer = Callable[[WerkzeugRequest], WerkzeugResponse]


def unknown(code: str = "MANIFEST_UNKNOWN") -> WerkzeugResponse:
    body = json.dumps({"errors": [{"code": code, "message": "unknown", "detail": {}}]})
    return WerkzeugResponse(body, 404, {"Content-Type": "application/json"})


def manifest(label: str) -> WerkzeugResponse:
    return WerkzeugResponse(
        json.dumps({"schemaVersion": 2, "label": label}),
        headers={"Content-Type": MANIFEST_TYPE, "Docker-Content-Digest": DIGEST},
    )


class StandIn:
    """A registry without auth (or with the realm `require_tokens_from` names): `answers` by
    request path, 404 NAME_UNKNOWN for the rest."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.answers: dict[str, Answer] = {}
        server.expect_request("/v2/").respond_with_data("{}")
        server.expect_request(re.compile(r"/v2/.+")).respond_with_handler(self._answer)

    def require_tokens_from(self, realm: str) -> None:
        """Challenge `/v2/` with a Bearer realm, so crev asks it for tokens."""
        self.server.clear()
        self.server.expect_request("/v2/").respond_with_data(
            "{}", 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="s"'}
        )
        self.server.expect_request(re.compile(r"/v2/.+")).respond_with_handler(self._answer)

    def _answer(self, request: WerkzeugRequest) -> WerkzeugResponse:
        answer = self.answers.get(request.path)
        return answer(request) if answer is not None else unknown("NAME_UNKNOWN")

    def asked(self) -> list[tuple[str, str]]:
        return [
            (request.method, request.full_path.rstrip("?"))
            for request, _ in self.server.log
            if request.path != "/v2/"
        ]

    @property
    def host(self) -> str:
        return f"{self.server.host}:{self.server.port}"


@contextlib.contextmanager
def run_stand_in() -> Iterator[StandIn]:
    """A stand-in registry on a server of its own (the test's `httpserver` is another)."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield StandIn(server)
    finally:
        server.clear()
        server.stop()
