"""A TLS connection as httpcore's network stream: OpenSSL's TLS (an `ssl.SSLObject`) over the
connection's socket, with crev moving the bytes between them through `ssl.MemoryBIO`s.

`ssl.SSLSocket` reads one TLS record (at most 16 KiB) per call, with two system calls each
(the record's header, then its body). This stream reads the socket in large pieces and lets
OpenSSL decrypt every whole record they hold, so relaying a layer takes a few system calls per
read instead of two per record (bench/README.md has the figures).
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Any, cast

import httpcore

# The most ciphertext one TLS record takes on the wire: 16 KiB of content and what TLS 1.2 may
# add to it (RFC 5246 6.2.3; TLS 1.3 adds less).
_RECORD_BYTES = 5 + 16384 + 2048
# How much of a socket read goes into OpenSSL's input buffer at once: the buffer never shrinks
# while its connection lives (idle in the pool included), so a large read is fed in pieces.
_FEED_BYTES = 64 * 1024
# The most plaintext one write hands to OpenSSL at once, for the same reason: one record.
_WRITE_BYTES = 16384


class _Scratch(threading.local):
    """The buffers a read fills, one pair per thread: a relay reads many times, and a fresh
    buffer for each read would be a fresh allocation (and its page faults) each time."""

    def __init__(self) -> None:
        self.ciphertext = bytearray()
        self.plaintext = bytearray()


_scratch = _Scratch()


def _at_least(buffer: bytearray, size: int) -> memoryview:
    if len(buffer) < size:
        buffer.extend(bytes(size - len(buffer)))
    return memoryview(buffer)


def _send(sock: socket.socket, data: bytes) -> None:
    """All of `data`, each send waiting up to the socket's timeout (as httpcore's stream)."""
    view = memoryview(data)
    while view:
        view = view[sock.send(view) :]


class TLSStream(httpcore.NetworkStream):
    """A client's TLS connection over `sock`, as `TLSStream.start` makes it.

    A read waits (within its timeout, one deadline for the whole call) until it can return
    some plaintext, then returns all the plaintext the connection holds already, up to
    `max_bytes`: what was decrypted or read before, and what the socket holds now, read
    without waiting again. The socket keeps the timeout httpcore gives each read and write.
    """

    def __init__(
        self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None
    ) -> None:
        self._sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._timeout = sock.gettimeout()
        # Whether the upstream ended the connection (a close_notify, or the socket's end).
        self._ended = False
        # A failure met while taking what was held, kept for the next read: the bytes read
        # before it go up first, as they would have one record at a time.
        self._failure: OSError | None = None

    @classmethod
    def start(
        cls,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> TLSStream:
        """The stream once its handshake is done, within `timeout` as a whole. On failure the
        socket is closed, and the error is httpcore's ConnectError (or ConnectTimeout) raised
        from OpenSSL's or the socket's, as from httpcore's own stream."""
        try:
            stream = cls(sock, context, server_hostname)
            stream._handshake(None if timeout is None else time.monotonic() + timeout)
            stream._set_timeout(timeout)
        except TimeoutError as error:
            sock.close()
            raise httpcore.ConnectTimeout(error) from error
        except OSError as error:
            sock.close()
            raise httpcore.ConnectError(error) from error
        return stream

    def _handshake(self, ends: float | None) -> None:
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                _send(self._sock, self._outgoing.read())
                return
            _send(self._sock, self._outgoing.read())
            self._wait(ends, "the TLS handshake took too long")
            data = self._sock.recv(_RECORD_BYTES)
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout

    def _wait(self, ends: float | None, message: str) -> None:
        """Until the socket has something to read, or the deadline `ends` passes."""
        if ends is None:
            self._poll.poll()
            return
        remaining = ends - time.monotonic()
        if remaining <= 0 or not self._poll.poll(remaining * 1000):
            raise TimeoutError(message)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise httpcore.ReadError(failure) from failure
        if self._ended:
            return b""
        plaintext = _at_least(_scratch.plaintext, max_bytes)
        try:
            self._set_timeout(timeout)
            size = self._decrypt(plaintext, 0, max_bytes)
            if not size:
                ends = None if timeout is None else time.monotonic() + timeout
                while not size and not self._ended:
                    self._wait(ends, "the upstream's answer took too long")
                    size = self._receive(plaintext, size, max_bytes)
        except TimeoutError as error:
            raise httpcore.ReadTimeout(error) from error
        except OSError as error:
            raise httpcore.ReadError(error) from error
        try:
            while size < max_bytes and not self._ended and self._poll.poll(0):
                size = self._receive(plaintext, size, max_bytes)
        except OSError as error:
            self._failure = error
        return bytes(plaintext[:size])

    def _receive(self, plaintext: memoryview, size: int, limit: int) -> int:
        """Read the socket once, and decrypt what it gave into `plaintext` after `size`
        bytes, up to `limit`: the new size."""
        asked = limit - size + _RECORD_BYTES
        ciphertext = _at_least(_scratch.ciphertext, asked)
        received = self._sock.recv_into(ciphertext, asked)
        if not received:
            self._incoming.write_eof()
            return self._decrypt(plaintext, size, limit)
        fed = 0
        while fed < received and size < limit:
            piece = min(received, fed + _FEED_BYTES)
            self._incoming.write(ciphertext[fed:piece])
            fed = piece
            size = self._decrypt(plaintext, size, limit)
        if fed < received:
            # The read is full: the rest (less than a record or two) waits for the next.
            self._incoming.write(ciphertext[fed:received])
        return size

    def _decrypt(self, plaintext: memoryview, size: int, limit: int) -> int:
        """Decrypt what OpenSSL holds into `plaintext` after `size` bytes, up to `limit`."""
        tls = self._tls
        try:
            while size < limit:
                # Into a buffer, `read` returns how much it wrote (typeshed says bytes).
                count = cast(int, tls.read(limit - size, plaintext[size:]))
                if not count:  # the upstream's close_notify
                    self._ended = True
                    break
                size += count
        except ssl.SSLWantReadError:
            pass  # no whole record left
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            # The socket ended without a close_notify: an end like any other, as for
            # `SSLSocket` (suppress_ragged_eofs); a body cut short is h11's to notice.
            self._ended = True
        return size

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._set_timeout(timeout)
            view = memoryview(buffer)
            for start in range(0, len(view), _WRITE_BYTES):
                self._tls.write(view[start : start + _WRITE_BYTES])
                _send(self._sock, self._outgoing.read())
        except TimeoutError as error:
            raise httpcore.WriteTimeout(error) from error
        except OSError as error:
            raise httpcore.WriteError(error) from error

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise NotImplementedError("TLS within TLS is for proxies, and crev asks through none")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._tls
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "is_readable":
            return self._is_readable()
        return None

    def _is_readable(self) -> bool:
        """Whether the upstream sent something or ended the connection: httpcore asks this of
        an idle pooled connection before it reuses one, and drops it if so."""
        if self._ended or self._failure is not None or self._sock.fileno() == -1:
            return True
        if self._tls.pending() or self._incoming.pending:
            return True
        return bool(self._poll.poll(0))
