"""Run a real distribution registry (``/usr/bin/docker-registry``) with token auth for tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import httpx
import trustme

from .issuer import AccessPolicy, TokenIssuer
from .s3_storage import S3Storage, run_s3_storage
from .tools import ACCESS_LINE, free_port, read_settled, settled_size, stop_process

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE = "test-registry"
ISSUER_NAME = "test-issuer"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3

# The registry writes one Apache combined-format line per request to stdout (ACCESS_LINE).
# That log covers every request, including ones rejected before routing, whereas
# logrus' "response completed" lines on stderr skip some error paths.


class AccessLogEntry(NamedTuple):
    """One request the registry served; compares equal to a plain ``(method, path)`` tuple."""

    method: str
    path: str  # request URI as sent, query string included


class AccessLogRecord(NamedTuple):
    method: str
    path: str
    status: int


@dataclass
class TestRegistry:
    """A running registry plus its token issuer; see ``start_test_registry``."""

    __test__ = False  # not a pytest test class despite the name

    host: str
    scheme: str
    service: str
    username: str
    password: str
    ca_file: Path | None
    issuer: TokenIssuer
    workdir: Path
    stdout_path: Path
    stderr_path: Path
    # Where a redirecting registry keeps its blobs: its blob GETs answer 307 to signed URLs there.
    storage: S3Storage | None = None
    _access_offset: int = field(default=0, repr=False)
    _stderr_offset: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def realm(self) -> str:
        return self.issuer.realm

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's ``verify=`` for the registry and the issuer."""
        return client_verify(self.ca_file)

    @property
    def cert_dir(self) -> Path | None:
        """A directory with the CA as ``ca.crt``, as skopeo's ``--cert-dir`` wants it."""
        return self.ca_file.parent if self.ca_file is not None else None

    def tls_args(self, prefix: str = "") -> list[str]:
        """skopeo flags to reach this registry; prefix is "", "src-" or "dest-"."""
        if self.ca_file is None:
            return [f"--{prefix}tls-verify=false"]
        return [f"--{prefix}cert-dir", str(self.cert_dir), f"--{prefix}tls-verify=true"]

    def creds_arg(self, prefix: str = "") -> str:
        return f"--{prefix}creds={self.username}:{self.password}"

    def docker_ref(self, name: str, reference: str = "latest") -> str:
        separator = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{self.host}/{name}{separator}{reference}"

    def token(self, *scopes: str, authenticated: bool = True) -> str:
        """A bearer token for the given scopes, minted in-process (not in the issuer log)."""
        account = self.username if authenticated else None
        return self.issuer.mint_token(scopes, account=account, service=self.service)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this registry that trusts its CA."""
        return httpx.Client(base_url=self.url, verify=self.verify, **kwargs)

    # -- logs

    def access_log_records(self) -> list[AccessLogRecord]:
        text = read_settled(self.stdout_path, self._access_offset)
        return [
            AccessLogRecord(m["method"], m["uri"], int(m["status"]))
            for m in map(ACCESS_LINE.search, text.splitlines())
            if m is not None
        ]

    def access_log(self) -> list[AccessLogEntry]:
        """Every HTTP request served since start or the last ``clear_logs()``, oldest first."""
        return [AccessLogEntry(r.method, r.path) for r in self.access_log_records()]

    def server_log(self) -> str:
        """The registry's own (logrus) log since the last ``clear_logs()``; for diagnostics."""
        return read_settled(self.stderr_path, self._stderr_offset)

    def clear_logs(self) -> None:
        """Forget registry, issuer and storage history so a test sees only its own requests."""
        self._access_offset = settled_size(self.stdout_path)
        self._stderr_offset = settled_size(self.stderr_path)
        self.issuer.clear_log()
        if self.storage is not None:
            self.storage.clear_log()


def client_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """httpx ``verify=`` value trusting ``ca_file`` (httpx deprecates passing a path)."""
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True


# --------------------------------------------------------------------- lifecycle


def _registry_config(
    *,
    port: int,
    root: Path,
    realm: str,
    rootcertbundle: Path,
    tls: tuple[Path, Path] | None,
    storage: S3Storage | None,
) -> dict[str, Any]:
    http: dict[str, Any] = {
        "addr": f"{HOST}:{port}",
        # A fixed secret silences the startup warning and keeps upload state valid.
        "secret": secrets.token_hex(16),
        "headers": {"X-Content-Type-Options": ["nosniff"]},
    }
    if tls is not None:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    return {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            **_driver(root, storage),
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
        "auth": {
            "token": {
                "realm": realm,
                "service": SERVICE,
                "issuer": ISSUER_NAME,
                "rootcertbundle": str(rootcertbundle),
            }
        },
    }


def _driver(root: Path, storage: S3Storage | None) -> dict[str, Any]:
    """The storage driver: files under `root`, or the S3 server (which the registry then
    redirects blob reads to: distribution's default for a driver that signs URLs)."""
    if storage is None:
        return {"filesystem": {"rootdirectory": str(root)}}
    return {"s3": storage.registry_driver(), "redirect": {"disable": False}}


def _registry_env(storage: S3Storage | None) -> dict[str, str]:
    # REGISTRY_* variables override the config file; don't let the caller's leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    if storage is not None:
        # The s3 driver panics at start when AWS_CA_BUNDLE is set; Go's own TLS reads the CA
        # from SSL_CERT_FILE instead.
        env.pop("AWS_CA_BUNDLE", None)
        env["SSL_CERT_FILE"] = str(storage.ca_file)
    return env


def _wait_ready(proc: subprocess.Popen[bytes], url: str, verify: ssl.SSLContext | bool) -> None:
    """Poll ``/v2/`` until it answers 401 with a Bearer challenge."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(verify=verify, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"registry exited early with code {proc.returncode}")
            try:
                response = client.get(f"{url}/v2/")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            challenge = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and challenge.startswith("Bearer "):
                return
            raise RuntimeError(f"unexpected /v2/ answer {response.status_code}: {challenge!r}")
    raise TimeoutError(f"registry at {url} not ready after {READY_TIMEOUT_S}s")


def _make_tls_material(workdir: Path) -> tuple[trustme.CA, Path, tuple[Path, Path]]:
    """A CA and a server cert for 127.0.0.1/localhost; the CA file sits alone as ``ca.crt``."""
    ca = trustme.CA()
    server_cert = ca.issue_cert(HOST, "localhost")
    certs_dir = workdir / "certs"
    certs_dir.mkdir(parents=True, exist_ok=True)
    ca_dir = workdir / "ca"
    ca_dir.mkdir(parents=True, exist_ok=True)
    ca_file = ca_dir / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_path = certs_dir / "server.crt"
    key_path = certs_dir / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in server_cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    server_cert.private_key_pem.write_to_path(str(key_path))
    return ca, ca_file, (cert_path, key_path)


def _server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """HTTPS for the issuer, from the registry's CA, so one CA file trusts both."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "localhost").configure_cert(context)
    return context


def _launch_registry(
    workdir: Path,
    issuer: TokenIssuer,
    rootcertbundle: Path,
    tls: tuple[Path, Path] | None,
    verify: ssl.SSLContext | bool,
    storage: S3Storage | None,
) -> tuple[subprocess.Popen[bytes], int, list[IO[bytes]]]:
    """Start the registry on a free port, retrying if another process grabbed the port."""
    stdout_path, stderr_path = workdir / "registry-access.log", workdir / "registry.log"
    last_error: Exception | None = None
    for _ in range(START_ATTEMPTS):
        port = free_port(HOST)
        config = _registry_config(
            port=port,
            root=workdir / "storage",
            realm=issuer.realm,
            rootcertbundle=rootcertbundle,
            tls=tls,
            storage=storage,
        )
        config_path = workdir / "config.yml"
        # JSON is valid YAML, and spares us quoting rules.
        config_path.write_text(json.dumps(config, indent=2))
        # Append mode so clear_logs() offsets stay valid across restarts.
        handles = [stdout_path.open("ab"), stderr_path.open("ab")]
        proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=handles[0],
            stderr=handles[1],
            env=_registry_env(storage),
        )
        scheme = "https" if tls else "http"
        try:
            _wait_ready(proc, f"{scheme}://{HOST}:{port}", verify)
            return proc, port, handles
        except (RuntimeError, TimeoutError) as exc:
            last_error = exc
            stop_process(proc, STOP_TIMEOUT_S)
            for handle in handles:
                handle.close()
    tail = stderr_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"registry failed to start: {last_error}\n{tail}")


@contextlib.contextmanager
def start_test_registry(
    workdir: Path,
    tls: bool = False,
    *,
    policy: AccessPolicy | None = None,
    redirecting: bool = False,
    content_of: TestRegistry | None = None,
) -> Iterator[TestRegistry]:
    """Run a token issuer and a registry under ``workdir``; both stop on exit.

    With ``tls=True`` the registry and the issuer both serve HTTPS with certs
    from one fresh CA whose PEM is ``TestRegistry.ca_file``.

    With ``redirecting=True`` the registry keeps its blobs on a local S3 server over TLS
    (``TestRegistry.storage``, with a CA of its own, the registry's when it has one), and
    answers a blob GET or HEAD with a 307 to a presigned URL there.

    With ``content_of``, it starts with a copy of that registry's storage (a filesystem one):
    the same names, tags and digests (a mirror), and a token issuer (a realm) of its own.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if content_of is not None:
        shutil.copytree(content_of.workdir / "storage", workdir / "storage")
    policy = policy or AccessPolicy()
    ca_file: Path | None = None
    server_files: tuple[Path, Path] | None = None
    issuer_ssl: ssl.SSLContext | None = None
    with contextlib.ExitStack() as stack:
        storage: S3Storage | None = None
        if tls:
            ca, ca_file, server_files = _make_tls_material(workdir)
            issuer_ssl = _server_ssl_context(ca)
        if redirecting:
            storage_ca, storage_ca_file = (
                (ca, ca_file) if tls and ca_file else _storage_ca(workdir / "storage-ca")
            )
            storage = stack.enter_context(
                run_s3_storage(workdir / "s3", storage_ca, storage_ca_file)
            )
        verify = client_verify(ca_file)
        issuer = stack.enter_context(
            TokenIssuer(
                service=SERVICE, issuer_name=ISSUER_NAME, policy=policy, ssl_context=issuer_ssl
            )
        )
        bundle = issuer.write_cert_bundle(workdir / "token-issuer.crt")
        proc, port, handles = _launch_registry(
            workdir, issuer, bundle, server_files, verify, storage
        )
        registry = TestRegistry(
            host=f"{HOST}:{port}",
            scheme="https" if tls else "http",
            service=SERVICE,
            username=policy.username,
            password=policy.password,
            ca_file=ca_file,
            issuer=issuer,
            workdir=workdir,
            stdout_path=workdir / "registry-access.log",
            stderr_path=workdir / "registry.log",
            storage=storage,
        )
        registry.clear_logs()  # hide the readiness probes
        try:
            yield registry
        finally:
            stop_process(proc, STOP_TIMEOUT_S)
            for handle in handles:
                handle.close()


def _storage_ca(directory: Path) -> tuple[trustme.CA, Path]:
    """A CA for the storage of a registry that serves plain HTTP, its PEM alone as ``ca.crt``."""
    ca = trustme.CA()
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, ca_file


def repository_names(entries: Iterable[AccessLogEntry]) -> set[str]:
    """Repository names that appear in ``/v2/<name>/(manifests|blobs|tags)/`` request paths."""
    names = set()
    for entry in entries:
        match = re.match(r"/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/", entry.path)
        if match:
            names.add(match["name"])
    return names
