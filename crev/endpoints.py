"""The `/v2/` API surface crev serves, parsed from a raw request path, and the methods each
endpoint answers.

The path is read raw: percent-escapes are never decoded in names, so an encoded slash or dot
fails the name grammar instead of changing the path's shape.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple
from urllib.parse import unquote

from .errors import (
    InvalidNameError,
    InvalidReferenceError,
    Refusal,
    RegistryError,
    method_not_allowed,
)
from .names import Digest, NameMapping, RepositoryName, Tag, Word, is_digest, is_tag

# Beyond any real name + reference; longer paths are refused before any parsing work.
MAX_PATH_LENGTH = 2048
# How much of an invalid reference a refusal quotes: a tag's 128 characters and a little more.
SHOWN_REFERENCE_CHARS = 140
# Upload session ids are opaque to clients: distribution uses UUIDs, others base64-ish tokens.
_UPLOAD_ID = re.compile(r"[A-Za-z0-9._~=+-]{1,512}")


READ_METHODS = frozenset({"GET", "HEAD"})
_METHOD_ORDER = ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")


class KindFacts(NamedTuple):
    """What crev knows of one kind of endpoint, in one place (as distribution's route
    descriptors hold theirs): its upstream path, the methods it answers, and how its answers
    are passed on, cached and completed."""

    # The upstream path, from the upstream name and the reference.
    path: str
    # GET and HEAD read it; an upload's GET is its status, part of writing.
    reads: bool = True
    # What it answers beyond reading where pushing is allowed.
    write_methods: frozenset[str] = frozenset()
    # Its query goes upstream as it came (a tag list's `n` and `last`, a referrers filter,
    # an upload session's opaque state).
    passes_query: bool = False
    # A route's fallback or mirror may answer a read of it: content, and what names it.
    falls_back: bool = False
    # A 200 to a read of it by digest never changes: kept at the edge for a year.
    immutable_by_digest: bool = False
    # A 200 to a read of it by tag changes when the tag moves: kept at the edge as long as a
    # public route lets tags be (CREV_TAG_CACHE_SECONDS).
    kept_by_tag: bool = False


class Kind(Enum):
    BASE = "base"
    MANIFEST = "manifests"
    BLOB = "blobs"
    TAGS = "tags"
    REFERRERS = "referrers"
    UPLOAD_START = "uploads"
    UPLOAD = "upload"

    @property
    def facts(self) -> KindFacts:
        return _FACTS[self]


_FACTS: dict[Kind, KindFacts] = {
    Kind.BASE: KindFacts("/v2/"),
    Kind.MANIFEST: KindFacts(
        "/v2/{name}/manifests/{reference}",
        write_methods=frozenset({"PUT", "DELETE"}),
        falls_back=True,
        immutable_by_digest=True,
        kept_by_tag=True,
    ),
    Kind.BLOB: KindFacts(
        "/v2/{name}/blobs/{reference}",
        write_methods=frozenset({"DELETE"}),
        falls_back=True,
        immutable_by_digest=True,
    ),
    Kind.TAGS: KindFacts(
        "/v2/{name}/tags/list", passes_query=True, falls_back=True, kept_by_tag=True
    ),
    Kind.REFERRERS: KindFacts(
        "/v2/{name}/referrers/{reference}", passes_query=True, falls_back=True
    ),
    Kind.UPLOAD_START: KindFacts(
        "/v2/{name}/blobs/uploads/", reads=False, write_methods=frozenset({"POST"})
    ),
    Kind.UPLOAD: KindFacts(
        "/v2/{name}/blobs/uploads/{reference}",
        reads=False,
        write_methods=frozenset({"GET", "PATCH", "PUT", "DELETE"}),
        passes_query=True,
    ),
}


class UploadSession(Word):
    """An upload session's id, as the upstream chose it: opaque to crev and to clients."""

    __slots__ = ()


class Endpoint(NamedTuple):
    """One registry API endpoint addressed by the client, under its vanity name."""

    kind: Kind
    name: RepositoryName | None = None
    # A manifest's tag or digest, a blob's or a referrers subject's digest, an upload session.
    reference: Tag | Digest | UploadSession | None = None

    def upstream_path(self, mapping: NameMapping) -> str:
        if self.name is None:
            return Kind.BASE.facts.path
        name = mapping.to_upstream(self.name).value
        return self.kind.facts.path.format(name=name, reference=self.reference)

    def allowed_methods(self, *, push: bool) -> list[str]:
        facts = self.kind.facts
        allowed = set(READ_METHODS) if facts.reads else set()
        if push:
            allowed |= facts.write_methods
        return [method for method in _METHOD_ORDER if method in allowed]

    def writes(self, method: str) -> bool:
        """Whether `method` on this endpoint is part of writing (an upload's GET is)."""
        return method not in READ_METHODS or not self.kind.facts.reads


def check_method(endpoint: Endpoint, method: str, *, push: bool) -> None:
    allowed = endpoint.allowed_methods(push=push)
    if method in allowed:
        return
    if not push and method not in READ_METHODS:
        message = f"{method} is not served: this registry is read-only"
    else:
        message = f"{method} is not served on {endpoint.kind.value} endpoints"
    raise method_not_allowed(message, ", ".join(allowed))


def parse_endpoint(path: str) -> Endpoint:
    """The endpoint of a raw request path (no query), or the error that says why not."""
    if len(path) > MAX_PATH_LENGTH:
        raise RegistryError(
            Refusal.PATH_TOO_LONG,
            f"request path is over {MAX_PATH_LENGTH} characters",
        )
    if path in ("/v2", "/v2/"):
        return Endpoint(Kind.BASE)
    if not path.startswith("/v2/"):
        raise RegistryError(Refusal.NOT_SERVED, f"{path!r} is not a registry API path")
    segments = path[len("/v2/") :].split("/")
    if segments == ["_catalog"]:
        raise RegistryError(Refusal.NOT_SERVED, "the catalog is not served by this registry")
    if len(segments) >= 3 and segments[-2:] == ["tags", "list"]:
        return Endpoint(Kind.TAGS, _name(segments[:-2], path))
    if len(segments) >= 4 and segments[-3:] == ["blobs", "uploads", ""]:
        return Endpoint(Kind.UPLOAD_START, _name(segments[:-3], path))
    if len(segments) >= 4 and segments[-3:-1] == ["blobs", "uploads"]:
        if not _UPLOAD_ID.fullmatch(segments[-1]) or not segments[-1].strip("."):
            raise RegistryError(Refusal.BLOB_UPLOAD_INVALID, f"invalid upload id {segments[-1]!r}")
        return Endpoint(Kind.UPLOAD, _name(segments[:-3], path), UploadSession(segments[-1]))
    if len(segments) >= 3:
        kind = {"manifests": Kind.MANIFEST, "blobs": Kind.BLOB, "referrers": Kind.REFERRERS}.get(
            segments[-2]
        )
        if kind is not None:
            name = _name(segments[:-2], path)
            # Only the reference is decoded: some clients escape the digest's colon.
            raw = unquote(segments[-1])
            reference = _manifest_reference(raw) if kind is Kind.MANIFEST else Digest.parse(raw)
            return Endpoint(kind, name, reference)
    raise RegistryError(
        Refusal.NOT_SERVED, f"{path!r} is not a registry API endpoint this proxy serves"
    )


def _manifest_reference(text: str) -> Tag | Digest:
    # A reference that is neither a tag nor a digest names no manifest: the distribution
    # registry answers 404 there, and the OCI conformance suite expects MANIFEST_UNKNOWN.
    if is_tag(text):
        return Tag(text)
    if is_digest(text):
        return Digest(text)
    raise InvalidReferenceError(
        f"manifest unknown: {text[:SHOWN_REFERENCE_CHARS]!r} is neither a tag nor a digest",
        {"reference": text[:SHOWN_REFERENCE_CHARS]},
    )


def _name(segments: list[str], path: str) -> RepositoryName:
    if not segments or any(not segment for segment in segments):
        raise InvalidNameError(f"invalid repository name in {path!r}: empty path segment")
    return RepositoryName.parse("/".join(segments))
