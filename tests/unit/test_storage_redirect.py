"""A blob read's redirect to signed storage: when an edge may keep it as a 308 and for how long,
where crev may follow it, and what the client gets of a blob crev fetched."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crev.messages import Headers
from crev.rewrite.edge_cache import NOT_SHARED
from crev.rewrite.storage_redirect import (
    EXPIRY_MARGIN_SECONDS,
    MAX_EDGE_SECONDS,
    edge_seconds,
    keep_at_edge,
    storage_answer_headers,
    storage_url,
)
from crev.urls import URL

NOW = datetime(2026, 12, 7, 14, 36, 26, tzinfo=UTC).timestamp()
DIGEST = "sha256:" + "f" * 64


def s3(expires: int, signed_at: str = "20261207T143626Z") -> str:
    return (
        "https://bucket.s3.amazonaws.com/docker/registry/v2/blobs/data"
        f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={signed_at}&X-Amz-Expires={expires}"
        "&X-Amz-SignedHeaders=host&X-Amz-Signature=abc"
    )


@pytest.mark.parametrize(
    ("lifetime", "seconds"),
    [
        (1200, 1200 - EXPIRY_MARGIN_SECONDS),  # distribution's 20 minutes
        (EXPIRY_MARGIN_SECONDS + 1, 1),
        (MAX_EDGE_SECONDS + EXPIRY_MARGIN_SECONDS, MAX_EDGE_SECONDS),
        (604800, MAX_EDGE_SECONDS),  # a week: an hour at most
    ],
)
def test_the_edge_keeps_a_redirect_until_a_minute_before_its_url_expires(
    lifetime: int, seconds: int
) -> None:
    assert edge_seconds(s3(lifetime), NOW) == seconds


@pytest.mark.parametrize(
    "location",
    [
        s3(EXPIRY_MARGIN_SECONDS),  # exactly a minute left: nothing to keep
        s3(30),  # nearly expired
        s3(1200, "20261207T140000Z"),  # signed 36 min ago for 20: expired
        "https://storage.example/blob",  # unsigned
        "https://storage.example/blob?sig=1",  # signed, but its expiry unreadable
        s3(1200) + "&X-Amz-Expires=1200",  # a parameter twice
    ],
)
def test_an_expired_nearly_expired_or_unreadable_signature_is_never_kept(location: str) -> None:
    assert edge_seconds(location, NOW) is None
    headers = Headers([("Location", location), ("Cache-Control", NOT_SHARED)])
    assert keep_at_edge(307, "GET", False, headers, NOW) == 307
    assert headers.get_all("cache-control") == [NOT_SHARED]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_gets_redirect_with_a_readable_distant_expiry_becomes_a_kept_308(status: int) -> None:
    location = s3(1200)
    headers = Headers([("Location", location), ("Cache-Control", NOT_SHARED)])
    assert keep_at_edge(status, "GET", False, headers, NOW) == 308
    assert headers.get_all("location") == [location]
    assert headers.get_all("cache-control") == ["public, max-age=0, s-maxage=1140"]


@pytest.mark.parametrize(
    ("status", "method", "client_authorized"),
    [
        (307, "HEAD", False),  # signed for HEAD; an edge answers a HEAD from a GET's entry
        (307, "GET", True),  # the client's own login: not the edge's to share
        (200, "GET", False),
        (404, "GET", False),
    ],
)
def test_anything_else_is_answered_as_it_came(
    status: int, method: str, client_authorized: bool
) -> None:
    headers = Headers([("Location", s3(1200)), ("Cache-Control", NOT_SHARED)])
    assert keep_at_edge(status, method, client_authorized, headers, NOW) == status
    assert headers.get_all("cache-control") == [NOT_SHARED]


def test_a_redirect_without_a_location_is_answered_as_it_came() -> None:
    headers = Headers([("Cache-Control", NOT_SHARED)])
    assert keep_at_edge(307, "GET", False, headers, NOW) == 307


UPSTREAM = URL.parse("https://europe-docker.pkg.dev/v2/p/r/tool/blobs/" + DIGEST)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        # Artifact Registry: a path on its own host, resolved against it
        (
            "/artifacts-downloads/namespaces/p/download/x?token=t",
            "https://europe-docker.pkg.dev/artifacts-downloads/namespaces/p/download/x?token=t",
        ),
        (s3(1200), s3(1200)),
        ("//cdn.example/blob?Expires=1", "https://cdn.example/blob?Expires=1"),
    ],
)
def test_storage_is_where_the_redirect_points_resolved_against_the_upstream(
    location: str, expected: str
) -> None:
    assert str(storage_url(location, UPSTREAM)) == expected


@pytest.mark.parametrize(
    "location",
    [
        "/v2/p/r/other/blobs/" + DIGEST,  # the registry API itself wants credentials
        "https://europe-docker.pkg.dev:443/v2/p/r/tool/blobs/x",
        "ftp://storage.example/blob",
        "https://storage.example:99999/blob",
        "http://[::1",
    ],
)
def test_a_redirect_that_is_not_to_storage_is_not_followed(location: str) -> None:
    assert storage_url(location, UPSTREAM) is None


def test_a_blob_from_storage_shows_its_bytes_description_and_the_registrys_fields() -> None:
    answer = Headers(
        [
            ("Content-Length", "10"),
            ("Content-Range", "bytes 0-9/100"),
            ("Content-Type", "application/octet-stream"),
            ("Accept-Ranges", "bytes"),
            ("ETag", '"abc"'),
            ("x-amz-request-id", "R1"),
            ("x-amz-id-2", "H1"),
            ("Set-Cookie", "s=1"),
            ("Server", "AmazonS3"),
            ("Connection", "keep-alive"),
        ]
    )
    redirect = Headers(
        [
            ("Location", s3(1200)),
            ("Docker-Distribution-Api-Version", "registry/2.0"),
            ("Cache-Control", NOT_SHARED),
        ]
    )
    assert storage_answer_headers(answer, redirect, DIGEST).items == [
        ("Content-Length", "10"),
        ("Content-Range", "bytes 0-9/100"),
        ("Content-Type", "application/octet-stream"),
        ("Accept-Ranges", "bytes"),
        ("ETag", '"abc"'),
        ("Docker-Distribution-Api-Version", "registry/2.0"),
        ("Docker-Content-Digest", DIGEST),
    ]


def test_the_registrys_digest_is_kept_when_it_sent_one() -> None:
    redirect = Headers([("Docker-Content-Digest", DIGEST)])
    shown = storage_answer_headers(Headers([("Content-Length", "1")]), redirect, DIGEST)
    assert shown.get_all("docker-content-digest") == [DIGEST]
