"""nginx terminating TLS in front of a plain-HTTP server, as real registries and deployments
have one: the bench's TLS upstream.

Debian's `nginx` runs as a process of its own, with its own prefix, configuration, pid file,
logs and temporary files under a work directory, on a free port of 127.0.0.1, with a
certificate from a test CA (``trustme``). It proxies every request to the backend over
keep-alive HTTP/1.1 without buffering either body (a relayed blob streams, as it would from a
registry's own front) in full-size TLS records, and passes the client's ``Host`` on, as
`rig.tls_front` does, so the backend's URLs name the front.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from .tools import free_port, stop_process

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
NGINX = "nginx"


@dataclass(frozen=True)
class NginxFront:
    """A running nginx: clients connect to ``host`` over TLS trusting ``ca_file``."""

    host: str
    backend: str
    ca_file: Path
    prefix: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def find_nginx() -> str | None:
    """Debian's nginx, which lives in /usr/sbin (not on every user's PATH)."""
    return shutil.which(NGINX) or shutil.which(NGINX, path="/usr/sbin:/usr/local/sbin")


def nginx_config(port: int, backend: str, prefix: Path, cert: Path, key: Path) -> str:
    """The whole configuration: one worker (the machine's cores are the bench's), every file
    under `prefix`, TLS on `port`, everything proxied to `backend`."""
    # A master started as root hands its workers to `nobody`, who could not write the temporary
    # files under a private work directory; the workers keep the master's user instead.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream backend {{
        server {backend};
        keepalive 64;
    }}
    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        keepalive_requests 100000;
        client_max_body_size 0;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_buffering off;
            # Unbuffered, nginx sends each read from the backend as it comes, one TLS record
            # per read of proxy_buffer_size (a page, 4 KiB, by default); 16 KiB reads make
            # the full-size records (nginx's ssl_buffer_size) that buffered fronts and CDNs
            # send for bulk data, and that a client's TLS reads are paid per.
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;  # unused unbuffered, but nginx checks them against the size
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_front(backend: str, workdir: Path) -> Iterator[NginxFront]:
    """Run nginx terminating TLS on a free port of 127.0.0.1 in front of `backend` (host:port)
    until the block ends.

    The CA that signed its certificate is written to ``workdir/ca.crt``; its configuration,
    pid file and error log are ``workdir/nginx.conf``, ``nginx.pid`` and ``error.log``.
    """
    nginx = find_nginx()
    if nginx is None:
        raise RuntimeError("nginx not installed: apt-get install nginx")
    workdir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_file = workdir / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(HOST)
    cert, key = workdir / "front.crt", workdir / "front.key"
    leaf.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    port = free_port()
    config = workdir / "nginx.conf"
    config.write_text(nginx_config(port, backend, workdir, cert, key))
    process = subprocess.Popen(
        [nginx, "-p", str(workdir), "-c", str(config), "-e", str(workdir / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    front = NginxFront(f"{HOST}:{port}", backend, ca_file, workdir, process)
    try:
        _wait_until_listening(front)
        yield front
    finally:
        # SIGTERM is nginx's fast shutdown: the master ends its workers and removes the pid file.
        stop_process(process, 5)
        if process.stderr is not None:
            process.stderr.close()


def _wait_until_listening(front: NginxFront) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    port = int(front.host.rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        if front.process.poll() is not None:
            stderr = (
                front.process.stderr.read().decode(errors="replace") if front.process.stderr else ""
            )
            raise RuntimeError(
                f"nginx exited with {front.process.returncode}: {stderr.strip()}\n"
                f"{front.error_log()}"
            )
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), 0.2).close()
            return
        time.sleep(0.02)
    raise RuntimeError(f"nginx did not listen within {START_TIMEOUT_S} s:\n{front.error_log()}")
