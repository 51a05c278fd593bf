"""The rig the tests and the benchmarks both drive: a real registry with token auth, a token
issuer, seeded images, `python -m crev` as a process, the caching edge, a TLS front, Vercel's
runtime and edge, `vercel build`, the load engine, and the base of the HTTP stand-ins. Helpers
only the tests use live in `tests/support/`, which imports from here; nothing here imports from
`tests/`.

Usable from pytest fixtures and from plain scripts (benchmarks)::

    with start_test_registry(Path(tmp)) as registry:
        images = seed_images(registry)
        ...
"""

from .cosign import SignedImage, push_signed_image
from .images import (
    PushedImage,
    config_digest,
    fetch_manifest,
    push_artifact,
    push_docker_schema2_image,
    push_large_image,
    push_many_tags,
    push_multi_platform_index,
    push_private_image,
    push_small_image,
    put_manifest_tags,
    seed_images,
    upload_blobs,
)
from .issuer import AccessPolicy, IssuerRequest, TokenIssuer, default_is_private
from .registry import (
    AccessLogEntry,
    AccessLogRecord,
    TestRegistry,
    repository_names,
    start_test_registry,
)
from .tools import ToolError, free_port, require_binaries, skopeo

__all__ = [
    "AccessLogEntry",
    "AccessLogRecord",
    "AccessPolicy",
    "IssuerRequest",
    "PushedImage",
    "SignedImage",
    "TestRegistry",
    "TokenIssuer",
    "ToolError",
    "config_digest",
    "default_is_private",
    "fetch_manifest",
    "free_port",
    "push_artifact",
    "push_docker_schema2_image",
    "push_large_image",
    "push_many_tags",
    "push_multi_platform_index",
    "push_private_image",
    "push_signed_image",
    "push_small_image",
    "put_manifest_tags",
    "repository_names",
    "require_binaries",
    "seed_images",
    "skopeo",
    "start_test_registry",
    "upload_blobs",
]
