"""crev's local server in a thread of the test process, for handler and hardening tests."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from crev.failover import forget_circuits
from crev.realm import forget_realms
from crev.server import LocalServer, create_server
from crev.upstream_auth import forget_tokens

if TYPE_CHECKING:
    import pytest


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


def forget_learned_state() -> None:
    """Forget the token realms, upstream tokens and open circuits crev has learned: they belong
    to the process, not to one server, and would carry over from one test to the next."""
    forget_realms()
    forget_tokens()
    forget_circuits()


def start_crev_server(patch: pytest.MonkeyPatch, **settings: str) -> CrevServer:
    """crev with `settings` (keyword names without the prefix) as its only `CREV_*` environment
    and nothing learned before; `patch` undoes the environment."""
    for name in list(os.environ):
        if name.startswith("CREV_"):
            patch.delenv(name)
    for name, value in settings.items():
        patch.setenv(f"CREV_{name.upper()}", value)
    forget_learned_state()
    return CrevServer(create_server("127.0.0.1", 0))
