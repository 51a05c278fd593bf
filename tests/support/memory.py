"""A process's memory as the tests that check streaming read it."""

from __future__ import annotations

import re
from pathlib import Path


def peak_rss(pid: int) -> int:
    """The process's peak resident memory in bytes (Linux `VmHWM`)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match[1]) * 1024
