"""Build small deterministic images as OCI layouts and push them to a TestRegistry.

Everything is made offline in Python (tar + gzip + JSON), so digests are
stable from run to run and tests can compare what they pull against
``PushedImage.digest`` and ``PushedImage.blobs``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .registry import TestRegistry
from .tools import skopeo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
DEFAULT_ARTIFACT_TYPE = "application/vnd.acme.report.v1+json"
DEFAULT_LARGE_SIZE = 32 * 1024 * 1024
DEFAULT_TAG_COUNT = 120
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
# Any fixed timestamp works; it only has to be the same on every run.
CREATED = "2024-01-01T00:00:00Z"


# ------------------------------------------------------------------------ blobs


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted JSON: same object, same bytes, same digest."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class Blob:
    """Content plus the media type it is referenced with."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class BuiltManifest:
    """An image (or artifact) manifest with the blobs it references, config first."""

    manifest: Blob
    blobs: tuple[Blob, ...]
    platform: Mapping[str, str] | None = None


def make_layer(
    files: Mapping[str, bytes], *, compresslevel: int = 6, executables: Iterable[str] = ()
) -> tuple[Blob, str]:
    """A gzip'd tar layer and its diff id (digest of the uncompressed tar).

    Owner, mode and mtime are fixed and gzip's header timestamp is zeroed, so
    the same files always give the same digest; `executables` are mode 0755.
    """
    runnable = frozenset(executables)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in _parent_dirs(files):
            tar.addfile(_tar_info(directory, tarfile.DIRTYPE, 0o755, 0))
        for path in sorted(files):
            data = files[path]
            mode = 0o755 if path in runnable else 0o644
            tar.addfile(_tar_info(path, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    tar_bytes = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=compresslevel) as gz:
        gz.write(tar_bytes)
    return Blob(OCI_LAYER_GZIP, compressed.getvalue()), sha256_digest(tar_bytes)


def _parent_dirs(files: Iterable[str]) -> list[str]:
    dirs = set()
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(dirs)


def _tar_info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def make_image_config(
    diff_ids: Sequence[str], *, label: str, architecture: str = "amd64", os: str = "linux"
) -> Blob:
    config = {
        "architecture": architecture,
        "os": os,
        "created": CREATED,
        "config": {
            "Cmd": ["/bin/sh"],
            "Labels": {"org.example.crev.test": label},
        },
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [
            {"created": CREATED, "created_by": f"crev test layer {i}"} for i in range(len(diff_ids))
        ],
    }
    return Blob(OCI_CONFIG, canonical_json(config))


def make_manifest(
    config: Blob,
    layers: Sequence[Blob],
    *,
    artifact_type: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Blob:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    if annotations:
        manifest["annotations"] = dict(annotations)
    return Blob(OCI_MANIFEST, canonical_json(manifest))


def make_index(children: Sequence[BuiltManifest]) -> Blob:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            child.manifest.descriptor(
                **({"platform": dict(child.platform)} if child.platform else {})
            )
            for child in children
        ],
    }
    return Blob(OCI_INDEX, canonical_json(index))


def small_layer_files(label: str, layer: int) -> dict[str, bytes]:
    """A few hundred bytes of files whose content depends on label and layer number."""
    seed = f"{label}/{layer}"
    return {
        f"etc/acme/{label.replace('/', '_')}-{layer}.txt": f"crev test image {seed}\n".encode(),
        f"usr/share/acme/layer-{layer}.bin": random.Random(seed).randbytes(512),
    }


def build_small_image(label: str, *, architecture: str = "amd64", layers: int = 2) -> BuiltManifest:
    """A single-platform OCI image with ``layers`` small layers, distinct per label."""
    built = [make_layer(small_layer_files(f"{label}/{architecture}", i)) for i in range(layers)]
    layer_blobs = [blob for blob, _ in built]
    config = make_image_config([diff for _, diff in built], label=label, architecture=architecture)
    return BuiltManifest(
        manifest=make_manifest(config, layer_blobs),
        blobs=(config, *layer_blobs),
        platform={"architecture": architecture, "os": "linux"},
    )


def build_large_image(label: str, size: int, *, seed: int = 1) -> BuiltManifest:
    """One layer holding ``size`` bytes of pseudo-random, hence incompressible, data.

    gzip level 0 (stored blocks) is still valid gzip and keeps building fast;
    compressing random bytes would gain nothing anyway.
    """
    data = random.Random(seed).randbytes(size)
    layer, diff_id = make_layer({"data/big.bin": data}, compresslevel=0)
    config = make_image_config([diff_id], label=label)
    return BuiltManifest(make_manifest(config, [layer]), (config, layer), None)


def build_artifact(label: str, artifact_type: str) -> BuiltManifest:
    """An OCI artifact: the empty config ``{}`` and one non-layer blob of type ``artifact_type``."""
    config = Blob(OCI_EMPTY, b"{}")
    payload = Blob(artifact_type, canonical_json({"report": label, "status": "ok"}))
    manifest = make_manifest(
        config,
        [payload],
        artifact_type=artifact_type,
        annotations={"org.opencontainers.image.created": CREATED},
    )
    return BuiltManifest(manifest, (config, payload), None)


# ------------------------------------------------------------------- OCI layout


def write_oci_layout(directory: Path, tag: str, top: Blob, blobs: Iterable[Blob]) -> Path:
    """Write an OCI image layout whose ``index.json`` names ``top`` as ``tag``."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in (top, *blobs):
        path = blob_dir / blob.digest.removeprefix("sha256:")
        if not path.exists():
            path.write_bytes(blob.data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [top.descriptor(annotations={REF_NAME_ANNOTATION: tag})],
    }
    (directory / "index.json").write_bytes(canonical_json(index))
    return directory


# ------------------------------------------------------------------------ pushes


@dataclass(frozen=True)
class PushedImage:
    """What a test needs to check a pull: the manifest digest and every blob digest."""

    name: str  # repository, e.g. "acme/tool"
    tag: str
    digest: str  # digest of the top manifest (the index for multi-platform)
    media_type: str
    manifest: bytes = field(repr=False)
    blobs: tuple[str, ...]  # config then layers; for an index, of every child
    blob_sizes: Mapping[str, int] = field(repr=False, hash=False)
    tags: tuple[str, ...] = ()  # every tag pointing at this digest
    children: tuple[str, ...] = ()  # child manifest digests of an index
    artifact_type: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    def docker_ref(self, host: str, *, by_digest: bool = False) -> str:
        return f"docker://{host}/{self.name}{'@' + self.digest if by_digest else ':' + self.tag}"

    @property
    def total_size(self) -> int:
        return sum(self.blob_sizes.values())


def pushed_image(
    name: str,
    tag: str,
    manifest: Blob,
    parts: Sequence[BuiltManifest],
    *,
    tags: Sequence[str] | None = None,
    artifact_type: str | None = None,
) -> PushedImage:
    """What a pull of `manifest` (built from `parts`: itself, or an index's children) must
    give."""
    blobs = [blob for part in parts for blob in part.blobs]
    is_index = manifest.media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST)
    return PushedImage(
        name=name,
        tag=tag,
        digest=manifest.digest,
        media_type=manifest.media_type,
        manifest=manifest.data,
        blobs=tuple(dict.fromkeys(blob.digest for blob in blobs)),
        blob_sizes={blob.digest: blob.size for blob in blobs},
        tags=tuple(tags or (tag,)),
        children=tuple(part.manifest.digest for part in parts) if is_index else (),
        artifact_type=artifact_type,
    )


def layout_dir(registry: TestRegistry, name: str, tag: str) -> Path:
    return registry.workdir / "layouts" / f"{name.replace('/', '_')}_{tag}"


def skopeo_push(
    registry: TestRegistry,
    layout: Path,
    layout_tag: str,
    name: str,
    tag: str,
    *,
    all_platforms: bool = False,
    manifest_format: str | None = None,
) -> str:
    """Copy ``oci:layout:tag`` to the registry as alice; returns the pushed manifest digest.

    Without a format conversion ``--preserve-digests`` makes skopeo fail rather
    than silently rewrite a manifest, so the digests we computed stay true.
    """
    digest_file = layout / f"pushed-{tag}.digest"
    args = ["copy", "--quiet", "--digestfile", str(digest_file)]
    args += [registry.creds_arg("dest-"), *registry.tls_args("dest-")]
    if all_platforms:
        args.append("--all")
    if manifest_format is None:
        args.append("--preserve-digests")
    else:
        args += ["--format", manifest_format]
    skopeo(*args, f"oci:{layout}:{layout_tag}", registry.docker_ref(name, tag))
    return digest_file.read_text().strip()


def fetch_manifest(registry: TestRegistry, name: str, reference: str) -> tuple[bytes, str]:
    """GET a manifest as alice; returns its bytes and Content-Type."""
    token = registry.token(f"repository:{name}:pull")
    headers = {"Authorization": f"Bearer {token}", "Accept": MANIFEST_ACCEPT}
    with registry.client() as client:
        response = client.get(f"/v2/{name}/manifests/{reference}", headers=headers)
    response.raise_for_status()
    return response.content, response.headers["Content-Type"]


def config_digest(registry: TestRegistry, name: str, manifest_digest: str) -> str:
    """The digest of the config an image manifest in the registry names."""
    manifest, _ = fetch_manifest(registry, name, manifest_digest)
    return json.loads(manifest)["config"]["digest"]


def put_manifest_tags(
    registry: TestRegistry, name: str, manifest: Blob, tags: Iterable[str]
) -> None:
    """PUT one manifest under many tags; far quicker than a skopeo run per tag."""
    token = registry.token(f"repository:{name}:pull,push")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": manifest.media_type}
    with registry.client() as client:
        for tag in tags:
            response = client.put(
                f"/v2/{name}/manifests/{tag}", content=manifest.data, headers=headers
            )
            _raise_for_status(response)


def upload_blobs(registry: TestRegistry, name: str, blobs: Iterable[Blob]) -> None:
    """Monolithic blob uploads (POST then PUT ?digest=), skipping blobs already present."""
    token = registry.token(f"repository:{name}:pull,push")
    auth = {"Authorization": f"Bearer {token}"}
    with registry.client() as client:
        for blob in blobs:
            if client.head(f"/v2/{name}/blobs/{blob.digest}", headers=auth).status_code == 200:
                continue
            started = client.post(f"/v2/{name}/blobs/uploads/", headers=auth)
            _raise_for_status(started)
            # Location already carries a _state query; httpx's params= would replace it.
            location = httpx.URL(started.headers["Location"])
            target = location.copy_merge_params({"digest": blob.digest})
            finished = client.put(
                target,
                content=blob.data,
                headers={**auth, "Content-Type": "application/octet-stream"},
            )
            _raise_for_status(finished)


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_error:
        request = response.request
        raise RuntimeError(
            f"{request.method} {request.url} -> {response.status_code}: {response.text}"
        )


def _push_built(
    registry: TestRegistry, name: str, tag: str, built: BuiltManifest, **kwargs: Any
) -> PushedImage:
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, built.manifest, built.blobs)
    digest = skopeo_push(registry, layout, tag, name, tag)
    _check_digest(name, tag, digest, built.manifest.digest)
    return pushed_image(name, tag, built.manifest, [built], **kwargs)


def _check_digest(name: str, tag: str, pushed: str, expected: str) -> None:
    if pushed != expected:
        raise RuntimeError(f"{name}:{tag} was pushed as {pushed}, expected {expected}")


# --------------------------------------------------------------------- builders


def push_small_image(
    registry: TestRegistry,
    name: str = "acme/tool",
    tag: str = "1",
    *,
    label: str | None = None,
    layers: int = 2,
) -> PushedImage:
    """A linux/amd64 OCI image with `layers` small layers (two by default)."""
    built = build_small_image(label or f"{name}:{tag}", layers=layers)
    return _push_built(registry, name, tag, built)


RUNNABLE_GREETING = b"hello from an image pulled through crev\n"


def push_runnable_image(
    registry: TestRegistry, busybox: bytes, name: str = "acme/runnable", tag: str = "1"
) -> PushedImage:
    """An image a container runtime can run: a static busybox and `/greeting.txt`."""
    layer, diff_id = make_layer(
        {"bin/busybox": busybox, "greeting.txt": RUNNABLE_GREETING}, executables=["bin/busybox"]
    )
    config = make_image_config([diff_id], label=f"{name}:{tag}")
    built = BuiltManifest(manifest=make_manifest(config, [layer]), blobs=(config, layer))
    return _push_built(registry, name, tag, built)


def push_private_image(
    registry: TestRegistry, name: str = "acme/private/secret", tag: str = "1"
) -> PushedImage:
    """Same shape as ``push_small_image``, in the namespace the issuer keeps private."""
    return push_small_image(registry, name, tag)


def push_multi_platform_index(
    registry: TestRegistry,
    name: str = "acme/multi",
    tag: str = "1",
    architectures: Sequence[str] = ("amd64", "arm64"),
) -> PushedImage:
    """An OCI index of one small image per architecture, pushed with ``skopeo copy --all``."""
    children = [build_small_image(f"{name}:{tag}", architecture=arch) for arch in architectures]
    index = make_index(children)
    blobs = [blob for child in children for blob in (child.manifest, *child.blobs)]
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, index, blobs)
    digest = skopeo_push(registry, layout, tag, name, tag, all_platforms=True)
    _check_digest(name, tag, digest, index.digest)
    return pushed_image(name, tag, index, children)


def push_docker_schema2_image(
    registry: TestRegistry, name: str = "acme/docker", tag: str = "1"
) -> PushedImage:
    """A Docker schema2 image: an OCI build converted by ``skopeo copy --format v2s2``.

    The conversion rewrites the manifest (and media types) but not the config
    or layer bytes, so the manifest is read back from the registry.
    """
    built = build_small_image(f"{name}:{tag}")
    layout = write_oci_layout(layout_dir(registry, name, tag), tag, built.manifest, built.blobs)
    digest = skopeo_push(registry, layout, tag, name, tag, manifest_format="v2s2")
    data, media_type = fetch_manifest(registry, name, tag)
    manifest = Blob(media_type, data)
    _check_digest(name, tag, digest, manifest.digest)
    parsed = json.loads(data)
    pushed_blobs = [parsed["config"]["digest"], *(layer["digest"] for layer in parsed["layers"])]
    if pushed_blobs != [blob.digest for blob in built.blobs]:
        raise RuntimeError(f"v2s2 conversion changed blobs of {name}:{tag}: {pushed_blobs}")
    return pushed_image(name, tag, manifest, [built])


def push_artifact(
    registry: TestRegistry,
    name: str = "acme/artifact",
    tag: str = "1",
    artifact_type: str = DEFAULT_ARTIFACT_TYPE,
    *,
    over_http: bool = False,
) -> PushedImage:
    """An OCI artifact: ``artifactType``, the empty config and one non-layer blob; pushed with
    skopeo, or with plain HTTP uploads (``over_http``) for when skopeo isn't wanted."""
    built = build_artifact(f"{name}:{tag}", artifact_type)
    if not over_http:
        return _push_built(registry, name, tag, built, artifact_type=artifact_type)
    upload_blobs(registry, name, built.blobs)
    put_manifest_tags(registry, name, built.manifest, [tag])
    return pushed_image(name, tag, built.manifest, [built], artifact_type=artifact_type)


def push_many_tags(
    registry: TestRegistry,
    name: str = "acme/many",
    count: int = DEFAULT_TAG_COUNT,
    tag_format: str = "tag-{:03d}",
) -> PushedImage:
    """One small image under ``count`` tags: one skopeo push, then manifest PUTs."""
    tags = [tag_format.format(i) for i in range(count)]
    built = build_small_image(name)
    layout = write_oci_layout(
        layout_dir(registry, name, tags[0]), tags[0], built.manifest, built.blobs
    )
    digest = skopeo_push(registry, layout, tags[0], name, tags[0])
    _check_digest(name, tags[0], digest, built.manifest.digest)
    put_manifest_tags(registry, name, built.manifest, tags[1:])
    return pushed_image(name, tags[0], built.manifest, [built], tags=tags)


def push_large_image(
    registry: TestRegistry,
    name: str = "acme/big",
    tag: str = "1",
    size: int = DEFAULT_LARGE_SIZE,
    *,
    seed: int = 1,
) -> PushedImage:
    """One layer of ``size`` incompressible bytes (32 MiB by default)."""
    return _push_built(registry, name, tag, build_large_image(f"{name}:{tag}", size, seed=seed))


def seed_images(
    registry: TestRegistry, *, large_size: int = DEFAULT_LARGE_SIZE
) -> dict[str, PushedImage]:
    """Push the standard set; keys name the kind of image.

    Everything lives under ``acme/`` except ``other``, which a proxy limited
    to that prefix must never reach. Issuer and registry logs are cleared
    afterwards so tests see only their own traffic.
    """
    images = {
        "tool": push_small_image(registry, "acme/tool", "1"),
        "multi": push_multi_platform_index(registry, "acme/multi", "1"),
        "docker": push_docker_schema2_image(registry, "acme/docker", "1"),
        "artifact": push_artifact(registry, "acme/artifact", "1"),
        "private": push_private_image(registry, "acme/private/secret", "1"),
        "many": push_many_tags(registry, "acme/many"),
        "big": push_large_image(registry, "acme/big", "1", large_size),
        "other": push_small_image(registry, "other/thing", "1"),
    }
    registry.clear_logs()
    return images
