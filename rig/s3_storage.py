"""A local S3 server (PyPI `moto[server]`'s `moto_server`) over TLS with a test CA, for the test
registry to keep its blobs in: distribution's `s3` storage driver then answers a blob GET with a
307 to a presigned URL on it, as ghcr.io and Docker Hub answer with one to their storage.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx
import trustme

from .tools import ACCESS_LINE, free_port, read_settled, settled_size, stop_process

HOST = "127.0.0.1"
BUCKET = "registry"
REGION = "us-east-1"
# moto accepts any key pair; the registry signs its URLs with this one.
ACCESS_KEY = "crev-test-access-key"
SECRET_KEY = "crev-test-secret-key"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3

# werkzeug writes one access line per request to stderr (ACCESS_LINE), e.g.
#   127.0.0.1 - - [07/Dec/2026 14:40:01] "GET /registry/docker/...?X-Amz-... HTTP/1.1" 200 -
# werkzeug colours some lines (a 206's, a 404's) with terminal escapes, even in a file.
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
# distribution keeps a blob at docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data.
_SIGNED_BLOB = re.compile(
    r"/blobs/sha256/[0-9a-f]{2}/(?P<hex>[0-9a-f]{64})/data\?.*X-Amz-Signature="
)


class StorageRequest(NamedTuple):
    method: str
    path: str  # request URI as sent, query string included
    status: int


@dataclass
class S3Storage:
    """A running `moto_server`: S3 at `url` (path-style, bucket `bucket`), trusted by `ca_file`."""

    host: str
    ca_file: Path
    log_path: Path
    bucket: str = BUCKET
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    _log_offset: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def requests(self) -> list[StorageRequest]:
        """Every request served since start or the last `clear_log()`, oldest first."""
        text = _COLOUR.sub("", read_settled(self.log_path, self._log_offset))
        return [
            StorageRequest(m["method"], m["uri"], int(m["status"]))
            for m in map(ACCESS_LINE.search, text.splitlines())
            if m is not None
        ]

    def signed_reads(self) -> dict[str, list[StorageRequest]]:
        """The requests made with a presigned URL (a client that followed the registry's
        redirect, not the registry itself), by the digest of the blob read."""
        reads: dict[str, list[StorageRequest]] = {}
        for request in self.requests():
            blob = _SIGNED_BLOB.search(request.path)
            if blob is not None:
                reads.setdefault(f"sha256:{blob['hex']}", []).append(request)
        return reads

    def clear_log(self) -> None:
        self._log_offset = settled_size(self.log_path)

    def registry_driver(self) -> dict[str, object]:
        """distribution's `storage.s3` settings for this server."""
        return {
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "region": self.region,
            "regionendpoint": self.url,
            "bucket": self.bucket,
            "secure": True,
            "v4auth": True,
            "rootdirectory": "/",
        }


@contextlib.contextmanager
def run_s3_storage(workdir: Path, ca: trustme.CA, ca_file: Path) -> Iterator[S3Storage]:
    """Start `moto_server` over TLS with a certificate from `ca` (whose PEM is `ca_file`), with
    an empty bucket; it stops on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(HOST, "localhost")
    cert_path, key_path = workdir / "s3.crt", workdir / "s3.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    log_path = workdir / "s3.log"
    last_error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        port = free_port(HOST)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "moto.server",
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                    "--ssl-cert",
                    str(cert_path),
                    "--ssl-key",
                    str(key_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        storage = S3Storage(f"{HOST}:{port}", ca_file, log_path)
        try:
            _create_bucket(process, storage)
        except (RuntimeError, TimeoutError) as error:
            last_error = error
            stop_process(process, STOP_TIMEOUT_S)
            continue
        storage.clear_log()
        try:
            yield storage
        finally:
            stop_process(process, STOP_TIMEOUT_S)
        return
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"moto_server failed to start: {last_error}\n{tail}")


def _create_bucket(process: subprocess.Popen[bytes], storage: S3Storage) -> None:
    """Create the bucket once the server answers; moto takes an unsigned request."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    trusting = ssl.create_default_context(cafile=str(storage.ca_file))
    with httpx.Client(verify=trusting, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited early with code {process.returncode}")
            try:
                created = client.put(f"{storage.url}/{storage.bucket}")
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if created.status_code != 200:
                raise RuntimeError(f"creating the bucket: {created.status_code} {created.text}")
            return
    raise TimeoutError(f"moto_server at {storage.url} not ready after {READY_TIMEOUT_S}s")
