"""The devcontainer CLI (`@devcontainers/cli`, pinned in tests/devcontainer-cli) as a registry
client, and a devcontainer Template for it to fetch: an OCI artifact whose config is of type
`application/vnd.devcontainers` and whose one layer is a plain tar of the Template's files.

`devcontainer templates apply` reads the manifest, fetches the layer blob, checks it against its
digest and unpacks it into the workspace, leaving out the Template's own metadata. It speaks
plain HTTP only to a registry named `localhost[:port]` (any other name is https), so the tests
name crev so.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rig.images import (
    Blob,
    BuiltManifest,
    PushedImage,
    make_manifest,
    pushed_image,
    put_manifest_tags,
    upload_blobs,
)
from rig.registry import TestRegistry
from rig.tools import ToolError, skip_or_fail_under_ci

DEVCONTAINER_CLI = (
    Path(__file__).resolve().parents[1]
    / "devcontainer-cli"
    / "node_modules"
    / ".bin"
    / "devcontainer"
)
CLI_TIMEOUT_S = 120.0
TEMPLATE_CONFIG = "application/vnd.devcontainers"
TEMPLATE_LAYER = "application/vnd.devcontainers.layer.v1+tar"
# The Template's own description: in the blob, never unpacked into the workspace.
TEMPLATE_METADATA = "devcontainer-template.json"


@dataclass(frozen=True)
class Template:
    """A pushed Template and the files `templates apply` must write into a workspace."""

    image: PushedImage
    files: Mapping[str, bytes] = field(repr=False)

    @property
    def layer(self) -> str:
        return self.image.blobs[1]


def require_devcontainer_cli() -> None:
    """Skip the calling test (fail under CI) unless node and the pinned CLI are installed."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not DEVCONTAINER_CLI.exists():
        missing.append("the devcontainer CLI (npm install --prefix tests/devcontainer-cli)")
    if missing:
        skip_or_fail_under_ci(f"devcontainer templates apply needs {', '.join(missing)}")


def push_devcontainer_template(
    registry: TestRegistry, name: str = "acme/templates/crev", tag: str = "1"
) -> Template:
    """A Template as `devcontainer templates publish` would push it, by plain registry uploads.
    The CLI wants a Template's name to be a namespace and an id: `templates/crev`."""
    template_id = name.rsplit("/", 1)[-1]
    metadata = {"id": template_id, "version": "1.0.0", "name": "crev test template"}
    files = {
        ".devcontainer/devcontainer.json": json.dumps(
            {"name": "crev", "image": "debian:bookworm"}, indent=2
        ).encode()
        + b"\n",
        ".devcontainer/setup.sh": b"#!/bin/sh\necho crev test template\n",
    }
    layer = Blob(TEMPLATE_LAYER, _tar({TEMPLATE_METADATA: json.dumps(metadata).encode(), **files}))
    config = Blob(TEMPLATE_CONFIG, b"{}")
    manifest = make_manifest(
        config, [layer], annotations={"dev.containers.metadata": json.dumps(metadata)}
    )
    upload_blobs(registry, name, [config, layer])
    put_manifest_tags(registry, name, manifest, [tag])
    built = BuiltManifest(manifest, (config, layer))
    return Template(pushed_image(name, tag, manifest, [built]), files)


def _tar(files: Mapping[str, bytes]) -> bytes:
    # Entries named `./path`, as the CLI's publish writes them and its apply looks them up.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def apply_template(template_id: str, workspace: Path, *, tmp_dir: Path, ca_file: Path) -> list[str]:
    """`devcontainer templates apply` of `template_id` into `workspace`, anonymously, trusting
    `ca_file` for https (the storage's, and crev's front's); the files it says it wrote. Its
    trace log is in any ToolError."""
    argv = [
        str(DEVCONTAINER_CLI),
        "templates",
        "apply",
        "--template-id",
        template_id,
        "--workspace-folder",
        str(workspace),
        "--tmp-dir",
        str(tmp_dir),
        "--log-level",
        "trace",
    ]
    # No proxy: every request goes to 127.0.0.1 (crev, and the storage it redirects to).
    environment = {
        key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")
    }
    environment["NODE_EXTRA_CA_CERTS"] = str(ca_file)
    # Anonymous, whatever `docker login` the machine's user has made: the CLI reads its
    # credentials from Docker's config.
    docker_config = tmp_dir / "docker-config"
    docker_config.mkdir(parents=True, exist_ok=True)
    environment["DOCKER_CONFIG"] = str(docker_config)
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            env=environment,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(argv, -1, "", f"timed out after {CLI_TIMEOUT_S}s") from exc
    if result.returncode != 0:
        raise ToolError(argv, result.returncode, result.stdout, result.stderr)
    files: list[str] = json.loads(result.stdout)["files"]
    return files
