"""The `/v2/` API surface crev serves, parsed from a raw request path.

The path is read raw: percent-escapes are never decoded in names, so an encoded slash or dot
fails the name grammar instead of changing the path's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

from .errors import RegistryError, name_invalid, unsupported
from .names import NameMapping, RepositoryName, parse_digest, parse_reference

# Beyond any real name + reference; longer paths are refused before any parsing work.
MAX_PATH_LENGTH = 2048


class Kind(Enum):
    BASE = "base"
    MANIFEST = "manifests"
    BLOB = "blobs"
    TAGS = "tags"
    REFERRERS = "referrers"


READ_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Endpoint:
    """One registry API endpoint addressed by the client, under its vanity name."""

    kind: Kind
    name: RepositoryName | None = None
    reference: str | None = None

    def upstream_path(self, mapping: NameMapping) -> str:
        if self.kind is Kind.BASE or self.name is None:
            return "/v2/"
        name = mapping.to_upstream(self.name).value
        if self.kind is Kind.TAGS:
            return f"/v2/{name}/tags/list"
        return f"/v2/{name}/{self.kind.value}/{self.reference}"


def parse_endpoint(path: str) -> Endpoint:
    """The endpoint of a raw request path (no query), or a RegistryError saying why not."""
    if len(path) > MAX_PATH_LENGTH:
        raise RegistryError(
            414, "NAME_INVALID", f"request path is over {MAX_PATH_LENGTH} characters"
        )
    if path in ("/v2", "/v2/"):
        return Endpoint(Kind.BASE)
    if not path.startswith("/v2/"):
        raise unsupported(f"{path!r} is not a registry API path")
    segments = path[len("/v2/") :].split("/")
    if segments == ["_catalog"]:
        raise unsupported("the catalog is not served by this registry")
    if len(segments) >= 3 and segments[-2:] == ["tags", "list"]:
        return Endpoint(Kind.TAGS, _name(segments[:-2], path))
    if len(segments) >= 3:
        kind = {"manifests": Kind.MANIFEST, "blobs": Kind.BLOB, "referrers": Kind.REFERRERS}.get(
            segments[-2]
        )
        if kind is not None:
            name = _name(segments[:-2], path)
            # Only the reference is decoded: some clients escape the digest's colon.
            raw = unquote(segments[-1])
            reference = parse_reference(raw) if kind is Kind.MANIFEST else parse_digest(raw)
            return Endpoint(kind, name, reference)
    raise unsupported(f"{path!r} is not a registry API endpoint this proxy serves")


def _name(segments: list[str], path: str) -> RepositoryName:
    if not segments or any(not segment for segment in segments):
        raise name_invalid(f"invalid repository name in {path!r}: empty path segment")
    return RepositoryName.parse("/".join(segments))
