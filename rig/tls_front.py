"""A TLS terminator in front of a plain-HTTP server, for clients that insist on https.

Some clients (python-dxf) always ask a token realm over https, whatever the registry's own
scheme. This front accepts TLS on 127.0.0.1 with a certificate from a test CA (``trustme``) and
pipes the decrypted bytes, unchanged, to a plain TCP backend such as ``python -m crev``. The
backend therefore sees the client's own ``Host`` header (the front's address) and nothing else.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

HOST = "127.0.0.1"
HANDSHAKE_TIMEOUT_S = 10.0
CHUNK = 64 * 1024
ACCEPT_POLL_S = 0.1


@dataclass
class TlsFront:
    """A running front: clients connect to ``host`` over TLS trusting ``ca_file``."""

    host: str
    backend: str
    ca_file: Path
    _listener: socket.socket = field(repr=False)
    _context: ssl.SSLContext = field(repr=False)
    _sockets: set[socket.socket] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stopped: threading.Event = field(default_factory=threading.Event, repr=False)
    connections: int = 0

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    # -- serving

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue  # wakes up now and then to notice stop()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        self._track(raw)
        try:
            raw.settimeout(HANDSHAKE_TIMEOUT_S)
            client = self._context.wrap_socket(raw, server_side=True)
            client.settimeout(None)
        except (OSError, ssl.SSLError):
            self._close(raw)
            return
        self._track(client)
        backend_host, _, backend_port = self.backend.rpartition(":")
        try:
            upstream = socket.create_connection((backend_host, int(backend_port)))
        except OSError:
            self._close(client)
            return
        self._track(upstream)
        to_backend = threading.Thread(
            target=self._pump_to_backend, args=(client, upstream), daemon=True
        )
        to_backend.start()
        self._pump_to_client(upstream, client)
        # Close only once neither pump uses the sockets: OpenSSL reads by fd number, so a pump
        # still blocked on a closed socket would read whichever connection reuses that fd
        # (docker, with several connections at once, got another connection's bytes).
        to_backend.join()
        self._close(upstream)
        self._close(client)

    def _pump_to_backend(self, client: ssl.SSLSocket, upstream: socket.socket) -> None:
        """Client to backend; the client's end of stream half-closes the backend connection."""
        try:
            while data := client.recv(CHUNK):
                upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
        except (OSError, ssl.SSLError):
            _shutdown(upstream)  # wakes _pump_to_client

    def _pump_to_client(self, upstream: socket.socket, client: ssl.SSLSocket) -> None:
        """Backend to client; when the backend closes, so does the client's connection."""
        try:
            while data := upstream.recv(CHUNK):
                client.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            _shutdown(client)  # wakes _pump_to_backend

    # -- bookkeeping

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _shutdown(sock)
            with contextlib.suppress(OSError):
                sock.close()


def _shutdown(sock: socket.socket) -> None:
    """End both directions of the TCP connection, waking any thread blocked on it, without
    releasing its fd. (SSLSocket.shutdown would also drop the TLS state under the other pump.)"""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextlib.contextmanager
def tls_front(backend: str, workdir: Path) -> Iterator[TlsFront]:
    """Serve TLS on a free port of 127.0.0.1 and pipe every connection to ``backend`` (host:port).

    The CA that signed the front's certificate is written to ``workdir/ca.crt``.
    """
    ca = trustme.CA()
    workdir.mkdir(parents=True, exist_ok=True)
    ca_file = workdir / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    listener = socket.create_server((HOST, 0))
    listener.settimeout(ACCEPT_POLL_S)
    port = listener.getsockname()[1]
    front = TlsFront(f"{HOST}:{port}", backend, ca_file, listener, context)
    thread = threading.Thread(target=front._serve, name="tls-front", daemon=True)
    thread.start()
    try:
        yield front
    finally:
        front.stop()
        thread.join(timeout=5)
