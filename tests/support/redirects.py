"""crev in front of a registry that redirects blob reads to signed storage, and the check that a
pull through it went to storage for every blob while crev relayed none of their bytes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rig.images import PushedImage
from rig.registry import TestRegistry
from rig.s3_storage import S3Storage

# How long a log line may lag behind the answer it logs.
LOG_WAIT_S = 10.0
# crev's request line: `GET /v2/tool/blobs/sha256:... 307 upstream=307 1.2ms`.
_BLOB_LINE = re.compile(
    r"\b(?P<method>GET|HEAD) /v2/\S+/blobs/(?P<digest>sha256:[0-9a-f]{64}) (?P<status>\d{3}) "
    r"upstream=(?P<upstream>\S+)"
)


class BlobAnswer(NamedTuple):
    """A blob request as crev's log shows it: what the client got, and what the upstream said."""

    method: str
    digest: str
    status: int
    upstream: str


# What crev answers a blob GET the registry redirected, and what its log says the upstream
# answered: the redirect handed on as it came, kept at the edge as a 308 (a public route), or
# followed by crev, which then streams the bytes (a route that follows redirects).
HANDED_ON = (307, "307")
KEPT_AT_EDGE = (308, "307")
FOLLOWED = (200, "307")


@dataclass
class Redirected:
    """crev (or Vercel's runtime with crev) serving a redirecting registry's `acme/` at `host`,
    answering a blob GET as `answers` says."""

    registry: TestRegistry
    image: PushedImage
    host: str
    crev_log: Callable[[], str] = field(repr=False)
    answers: tuple[int, str] = HANDED_ON
    _log_offset: int = field(default=0, repr=False)

    @property
    def storage(self) -> S3Storage:
        assert self.registry.storage is not None
        return self.registry.storage

    def clear_logs(self) -> None:
        """Forget what crev, the registry and the storage served before."""
        self.registry.clear_logs()
        self._log_offset = len(self.crev_log())

    def blob_answers(self, digests: Iterable[str]) -> list[BlobAnswer]:
        """crev's answers to blob requests since `clear_logs`, waiting until a GET of each of
        `digests` is logged."""
        wanted = set(digests)
        deadline = time.monotonic() + LOG_WAIT_S
        while True:
            answers = [
                BlobAnswer(m["method"], m["digest"], int(m["status"]), m["upstream"])
                for m in _BLOB_LINE.finditer(self.crev_log()[self._log_offset :])
            ]
            got = {answer.digest for answer in answers if answer.method == "GET"}
            if wanted <= got or time.monotonic() > deadline:
                return answers
            time.sleep(0.1)


def assert_fetched_from_storage(redirected: Redirected, digests: Iterable[str]) -> None:
    """Since `clear_logs`, every blob of `digests` was asked of crev, which answered each GET as
    `redirected.answers` says and a HEAD with the redirect as it came: with a redirect (307 or
    308), no blob byte went through crev and the client read the blob from the storage by its
    signed URL; followed, crev read it from there."""
    wanted = set(digests)
    answers = redirected.blob_answers(wanted)
    assert wanted <= {answer.digest for answer in answers if answer.method == "GET"}, answers
    heads = FOLLOWED if redirected.answers == FOLLOWED else HANDED_ON
    expected = {"GET": redirected.answers, "HEAD": heads}
    assert all(answer[2:] == expected[answer.method] for answer in answers), answers
    read = redirected.storage.signed_reads()
    assert wanted <= {digest for digest, reads in read.items() if _served(reads)}, read


def _served(reads: Iterable[tuple[str, str, int]]) -> bool:
    return any(method == "GET" and status in (200, 206) for method, _, status in reads)


def trust_bundle(path: Path, *ca_files: Path) -> Path:
    """One PEM file trusting each of `ca_files`, for clients that take a single CA bundle."""
    path.write_text("".join(ca_file.read_text() for ca_file in ca_files))
    return path
