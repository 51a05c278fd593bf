"""A stand-in registry that serves images built in memory (`rig.images`) to clients
holding its one bearer token: manifests by tag and by digest and blobs, with the headers a
distribution registry sends. Other requests get the registry's 401 challenge or a 404.

It answers as fast as a thread can write, so a load test through crev measures crev, and it
needs nothing installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rig.images import Blob, BuiltManifest, PushedImage, make_index, pushed_image
from rig.stand_in import AnyMethodHandler, StandInServer

TOKEN = "static-registry-token"
SERVICE = "static-registry"
CHUNK_SIZE = 1024 * 1024


@dataclass
class StaticRegistry:
    """The content, by repository: manifests by tag and digest, blobs by digest."""

    manifests: dict[tuple[str, str], Blob] = field(default_factory=dict)
    blobs: dict[tuple[str, str], Blob] = field(default_factory=dict)
    # What a pull of each added image must give.
    images: list[PushedImage] = field(default_factory=list)
    server: StandInServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return self.server.host

    def add_image(self, name: str, tag: str, built: BuiltManifest) -> PushedImage:
        self._add_manifest(name, tag, built)
        self.images.append(pushed_image(name, tag, built.manifest, [built]))
        return self.images[-1]

    def add_index(self, name: str, tag: str, children: list[BuiltManifest]) -> PushedImage:
        index = make_index(children)
        for child in children:
            self._add_manifest(name, None, child)
        self.manifests[(name, tag)] = self.manifests[(name, index.digest)] = index
        self.images.append(pushed_image(name, tag, index, children))
        return self.images[-1]

    def _add_manifest(self, name: str, tag: str | None, built: BuiltManifest) -> None:
        self.manifests[(name, built.manifest.digest)] = built.manifest
        if tag is not None:
            self.manifests[(name, tag)] = built.manifest
        for blob in built.blobs:
            self.blobs[(name, blob.digest)] = blob


@contextmanager
def static_registry(registry: StaticRegistry) -> Iterator[StaticRegistry]:
    """Serve `registry` on a free port of 127.0.0.1 until the block ends."""

    class Handler(_Handler):
        content = registry

    with StandInServer(Handler, name="static-registry") as server:
        registry.server = server
        try:
            yield registry
        finally:
            registry.server = None


class _Handler(AnyMethodHandler):
    content: StaticRegistry

    def serve(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/token":
            self._answer(200, "application/json", json.dumps({"token": TOKEN}).encode())
            return
        if self.command not in ("GET", "HEAD"):
            self._error(405, "UNSUPPORTED", "this registry is read-only")
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            realm = f"http://{self.content.host}/token"
            self._error(
                401,
                "UNAUTHORIZED",
                "authentication required",
                [("WWW-Authenticate", f'Bearer realm="{realm}",service="{SERVICE}"')],
            )
            return
        if path == "/v2/":
            self._answer(200, "application/json", b"{}")
            return
        name, kind, reference = _split(path)
        if kind == "manifests" and (manifest := self.content.manifests.get((name, reference))):
            self._answer(200, manifest.media_type, manifest.data, manifest.digest)
        elif kind == "blobs" and (blob := self.content.blobs.get((name, reference))):
            self._answer(200, "application/octet-stream", blob.data, blob.digest)
        else:
            self._error(
                404, "NAME_UNKNOWN" if kind is None else f"{kind[:-1].upper()}_UNKNOWN", path
            )

    def _answer(
        self,
        status: int,
        content_type: str,
        body: bytes,
        digest: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest is not None:
            self.send_header("Docker-Content-Digest", digest)
        for name, value in extra or []:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            view = memoryview(body)
            for start in range(0, len(view), CHUNK_SIZE):
                self.wfile.write(view[start : start + CHUNK_SIZE])

    def _error(
        self, status: int, code: str, message: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._answer(status, "application/json", body, extra=extra)


def _split(path: str) -> tuple[str, str | None, str]:
    """`/v2/<name>/<manifests|blobs>/<reference>` as its three parts."""
    rest = path.removeprefix("/v2/")
    for kind in ("manifests", "blobs"):
        name, separator, reference = rest.rpartition(f"/{kind}/")
        if separator and name and "/" not in reference:
            return name, kind, reference
    return rest, None, ""
