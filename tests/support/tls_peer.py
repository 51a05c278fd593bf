"""The upstream's end of a TLS connection, for tests of crev's TLS stream: a test CA, and a
peer whose records OpenSSL frames in memory, so that a test decides how their bytes reach
the socket (split anywhere, dripped, cut short, closed with or without a close_notify)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trustme

RECORD_BYTES = 16384  # the most content one TLS record holds


class LocalCA:
    """A fresh CA, the server contexts it signs and the client contexts that trust it."""

    def __init__(self) -> None:
        self._ca = trustme.CA()

    def server_context(self, hostname: str = "127.0.0.1", tickets: int = 0) -> ssl.SSLContext:
        """A server's context for `hostname`; by default it sends TLS 1.3 no session tickets,
        so that a test knows every byte its client's socket holds."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert(hostname).configure_cert(context)
        context.num_tickets = tickets
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


class TLSPeer:
    """A server's TLS over `sock`, driven by the test: `records` gives the ciphertext of
    plaintext (one record per 16 KiB), `close_notify` that of TLS's own end."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self._outgoing.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the client left during the handshake") from None
                self._incoming.write(data)
            else:
                self.sock.sendall(self._outgoing.read())
                return

    def records(self, plaintext: bytes, size: int = RECORD_BYTES) -> bytes:
        for start in range(0, len(plaintext), size):
            self.tls.write(plaintext[start : start + size])
        return self._outgoing.read()

    def close_notify(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):  # the client's is not awaited
            self.tls.unwrap()
        return self._outgoing.read()

    def received(self) -> bytes:
        """The plaintext the client sent that the socket holds now (waiting for some)."""
        self._incoming.write(self.sock.recv(65536))
        chunks = []
        while True:
            try:
                chunks.append(self.tls.read(65536))
            except ssl.SSLWantReadError:
                return b"".join(chunks)


@contextmanager
def tls_listener(
    context: ssl.SSLContext, serve: Callable[[socket.socket], None]
) -> Iterator[tuple[str, int]]:
    """A listener on 127.0.0.1 handing each connection to `serve` on a thread of its own;
    its address, while the block runs."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[:2]
    finally:
        listener.close()
