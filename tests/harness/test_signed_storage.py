"""The storage stand-in on its own: it serves a blob like S3 serves a presigned URL (to the
method and within the lifetime it was signed for, never beside `Authorization`, ranges as 206)
and records every request with its headers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from rig.signed_storage import SignedStorage, run_signed_storage

DIGEST = "sha256:" + "a" * 64
BLOB = bytes(range(256)) * 1000


@pytest.fixture
def storage() -> Iterator[SignedStorage]:
    with run_signed_storage({DIGEST: BLOB}) as running:
        yield running


def test_a_signed_url_gives_the_blob_and_ranges_and_each_request_is_recorded(
    storage: SignedStorage,
) -> None:
    url = storage.signed_url(DIGEST)
    whole = httpx.get(url, headers={"X-Seen": "yes"})
    assert whole.status_code == 200
    assert whole.content == BLOB
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == BLOB[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(BLOB)}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, BLOB[-10:])
    assert httpx.get(url, headers={"Range": f"bytes={len(BLOB)}-"}).status_code == 416
    seen = storage.seen()
    assert [r.status for r in seen] == [200, 206, 206, 416]
    assert seen[0].header("x-seen") == "yes"
    assert seen[1].header("Range") == "bytes=1000-1999"


def test_it_refuses_what_s3_refuses(storage: SignedStorage) -> None:
    url = storage.signed_url(DIGEST)
    assert httpx.get(url, headers={"Authorization": "Bearer t"}).status_code == 400
    # Signed for GET: a HEAD with it does not match the signature.
    assert httpx.head(url).status_code == 403
    assert httpx.head(storage.signed_url(DIGEST, method="HEAD")).status_code == 200
    expired = storage.signed_url(DIGEST, lifetime=60, signed_at=time.time() - 61)
    assert httpx.get(expired).status_code == 403
    assert httpx.get(url.replace("X-Amz-Expires=1200", "X-Amz-Expires=9999")).status_code == 403
    missing = storage.signed_url("sha256:" + "b" * 64)
    assert httpx.get(missing).status_code == 404
    assert storage.seen()[0].header("authorization") == "Bearer t"
