"""crev's local server in a thread of the test process, for handler and hardening tests."""

from __future__ import annotations

import threading

from crev.server import LocalServer


class CrevServer:
    """crev's local server on a free port, in a thread of the test process."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        host, port = server.server_address[:2]
        self.host = f"{host}:{port}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
