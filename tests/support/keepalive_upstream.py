"""A raw-socket upstream that keeps its connections open and counts them, for tests of
connection reuse: each answer is the bytes a test chose, with no framing added or checked."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable


class KeepAliveServer:
    """A raw HTTP/1.1 server that keeps connections open and counts them.

    `answer(n)` gives the bytes for the n-th request on a connection (from 1), or None to
    close that connection without answering; `close_after_answer` closes each connection
    after one answer without saying so, as an upstream does when its idle timeout fires.
    With `tls`, the server speaks TLS, and ends each connection with a close_notify if
    `close_notify` (else the socket just closes, as a server that is cut off does).
    """

    def __init__(
        self,
        answer: Callable[[int], bytes | None],
        close_after_answer: bool = False,
        tls: ssl.SSLContext | None = None,
        close_notify: bool = False,
    ):
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.tls = tls
        self.close_notify = close_notify
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            try:
                self._answer(conn)
            finally:
                if isinstance(conn, ssl.SSLSocket):
                    if self.close_notify:
                        conn.settimeout(5.0)  # the client's close_notify may never come
                        with contextlib.suppress(OSError):
                            conn.unwrap()
                    conn.close()

    def _answer(self, conn: socket.socket) -> None:
        buffered = b""
        count = 0
        while True:
            while b"\r\n\r\n" not in buffered:
                data = conn.recv(65536)
                if not data:
                    return
                buffered += data
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = _content_length(head)
            while len(buffered) < length:
                buffered += conn.recv(65536)
            buffered = buffered[length:]
            count += 1
            with self._lock:
                self.requests.append(head)
            answer = self.answer(count)
            if answer is None:
                return
            conn.sendall(answer)
            if self.close_after_answer:
                return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
