"""crev's local server in a thread of the test process, for handler and hardening tests."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from crev.process import Process
from crev.server import LocalServer, create_server

if TYPE_CHECKING:
    import pytest


class CrevServer:
    """crev's local server on a free port, in a thread of the test process."""

    def __init__(self, server: LocalServer, process: Process) -> None:
        self.server = server
        # What the server keeps between requests: its settings, their upstreams' realms and
        # tokens, its connections.
        self.process = process
        host, port = server.server_address[:2]
        self.host = f"{host}:{port}"
        self.url = f"http://{self.host}"
        self.thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.process.close()

    def forget_learned_state(self) -> None:
        """Forget the token realms and upstream tokens the server learned, for a server that
        several tests share."""
        self.process.forget()


def start_crev_server(patch: pytest.MonkeyPatch, **settings: str) -> CrevServer:
    """crev with `settings` (keyword names without the prefix) as its only `CREV_*` environment
    and a process of its own; `patch` undoes the environment."""
    for name in list(os.environ):
        if name.startswith("CREV_"):
            patch.delenv(name)
    for name, value in settings.items():
        patch.setenv(f"CREV_{name.upper()}", value)
    process = Process()
    return CrevServer(create_server("127.0.0.1", 0, process=process), process)
