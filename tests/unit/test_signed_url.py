"""Reading when a signed storage URL expires, for each signature scheme registries redirect to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crev.rewrite.signed_url import MAX_SIGNED_SECONDS, signed_until

BLOB = "https://storage.example/registry/docker/registry/v2/blobs/sha256/f3/f3ab/data"
# 2026-12-07T14:36:26Z
SIGNED_AT = int(datetime(2026, 12, 7, 14, 36, 26, tzinfo=UTC).timestamp())


def sigv4(prefix: str = "X-Amz-", date: str = "20261207T143626Z", expires: str = "1200") -> str:
    return (
        f"{BLOB}?{prefix}Algorithm=AWS4-HMAC-SHA256"
        f"&{prefix}Credential=key%2F20261207%2Fus-east-1%2Fs3%2Faws4_request"
        f"&{prefix}Date={date}&{prefix}Expires={expires}&{prefix}SignedHeaders=host"
        f"&{prefix}Signature=687f750b2867"
    )


def sas(expiry: str) -> str:
    return (
        "https://pkg-containers.githubusercontent.com/ghcr1/blobs/sha256:f3ab"
        f"?se={quote(expiry, safe='')}&sig=Xy%2Fz%3D&sp=r&spr=https&sr=b&sv=2019-12-12"
    )


# ------------------------------------------------------------------- each scheme, readable


@pytest.mark.parametrize("prefix", ["X-Amz-", "X-Goog-", "x-amz-", "x-goog-"])
def test_sigv4_and_gcs_v4_expire_their_lifetime_after_they_were_signed(prefix: str) -> None:
    assert signed_until(sigv4(prefix)) == SIGNED_AT + 1200


def test_the_longest_sigv4_lifetime_is_a_week() -> None:
    week = str(MAX_SIGNED_SECONDS)
    assert signed_until(sigv4(expires=week)) == SIGNED_AT + MAX_SIGNED_SECONDS


@pytest.mark.parametrize(
    "key",
    [
        "AWSAccessKeyId=AKIAEXAMPLE",  # S3 SigV2
        "GoogleAccessId=signer%40project.iam.gserviceaccount.com",  # GCS V2
        "Key-Pair-Id=K2JCJMDEHXQW5F",  # CloudFront canned policy
    ],
)
def test_an_expires_beside_a_signature_and_its_key_is_unix_seconds(key: str) -> None:
    assert signed_until(f"{BLOB}?{key}&Expires=1796655386&Signature=abc%2Bdef%3D") == 1796655386


@pytest.mark.parametrize(
    ("expiry", "instant"),
    [
        ("2026-12-07T15:00:00Z", datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)),
        ("2026-12-07T15:00Z", datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)),
        ("2026-12-07T15:00:09.1234567Z", datetime(2026, 12, 7, 15, 0, 9, tzinfo=UTC)),
        ("2026-12-07T17:00:00+02:00", datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)),
        ("2026-12-07T10:30:00-04:30", datetime(2026, 12, 7, 15, 0, 0, tzinfo=UTC)),
        # A day alone ends the signature at its start: the earlier of the two readings.
        ("2026-12-07", datetime(2026, 12, 7, 0, 0, 0, tzinfo=UTC)),
    ],
)
def test_an_azure_sas_expires_at_its_se(expiry: str, instant: datetime) -> None:
    assert signed_until(sas(expiry)) == int(instant.timestamp())


def test_an_unencoded_plus_in_an_azure_offset_is_a_plus_not_a_space() -> None:
    url = "https://acct.blob.core.windows.net/c/b?se=2026-12-07T17:00:00+02:00&sig=x&sp=r"
    assert signed_until(url) == int(datetime(2026, 12, 7, 15, tzinfo=UTC).timestamp())


def test_the_earliest_of_several_schemes_is_the_urls_expiry() -> None:
    url = sigv4() + "&se=2026-12-07T14:40:00Z&sig=x"
    assert signed_until(url) == int(datetime(2026, 12, 7, 14, 40, tzinfo=UTC).timestamp())
    assert signed_until(sigv4() + "&se=2026-12-08&sig=x") == SIGNED_AT + 1200


@given(
    signed=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    lifetime=st.integers(min_value=1, max_value=MAX_SIGNED_SECONDS),
)
def test_any_sigv4_instant_and_lifetime_reads_back(signed: datetime, lifetime: int) -> None:
    date = signed.strftime("%Y%m%dT%H%M%SZ")
    expected = int(signed.replace(microsecond=0).timestamp()) + lifetime
    assert signed_until(sigv4(date=date, expires=str(lifetime))) == expected


@given(
    instant=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)
    ),
    offset=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_any_sas_instant_in_any_offset_reads_back(instant: datetime, offset: int) -> None:
    instant = instant.replace(microsecond=0)
    local = instant + timedelta(minutes=offset)
    sign, minutes = ("+" if offset >= 0 else "-"), abs(offset)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    assert signed_until(sas(text)) == int(instant.timestamp())


# ------------------------------------------------------------------- unreadable: no lifetime


@pytest.mark.parametrize(
    "url",
    [
        BLOB,
        f"{BLOB}?digest=sha256%3Af3ab",
        "/artifacts-downloads/namespaces/p/blobs/x",
        # An `Expires` with no signing key beside it is not a signature's.
        f"{BLOB}?Expires=1796655386",
        f"{BLOB}?Expires=1796655386&Signature=abc",
        # Cloudflare's `verify=`, Docker Hub's CDN: not a scheme crev reads.
        f"{BLOB}?verify=1796655386-abcdef",
        "",
        "http://[::1",
    ],
)
def test_a_url_signed_by_no_known_scheme_has_no_expiry(url: str) -> None:
    assert signed_until(url) is None


@pytest.mark.parametrize(
    "url",
    [
        # SigV4 / GCS V4 started but not finished readably
        sigv4().replace("&X-Amz-Expires=1200", ""),
        sigv4().replace("X-Amz-Date=20261207T143626Z&", ""),
        sigv4().replace("&X-Amz-Signature=687f750b2867", ""),
        sigv4() + "&X-Amz-Date=20261207T143626Z",
        sigv4() + "&x-amz-expires=99999",
        sigv4(expires=""),
        sigv4(expires="0"),
        sigv4(expires="-5"),
        sigv4(expires="+5"),
        sigv4(expires="1e3"),
        sigv4(expires=" 1200"),
        sigv4(expires=str(MAX_SIGNED_SECONDS + 1)),
        sigv4(expires="99999999999999999999"),
        sigv4(date="2026-12-07T14:36:26Z"),
        sigv4(date="20261207T143626"),
        sigv4(date="20261307T143626Z"),
        sigv4(date="20260230T143626Z"),
        sigv4(date="20261207T246026Z"),
        sigv4(date="20261207T143626Z0"),
        # Arabic-Indic digits: digits to `\d`, not to a signature.
        sigv4(date="\u0662\u0660\u0662\u06661207T143626Z"),
        sas("\u0662\u0660\u0662\u0666-12-07"),
        sigv4("X-Goog-", expires="x"),
        # An `Expires` signature: S3 SigV2, GCS V2, CloudFront
        f"{BLOB}?AWSAccessKeyId=A&Expires=1796655386",
        f"{BLOB}?AWSAccessKeyId=A&Expires=soon&Signature=s",
        f"{BLOB}?Key-Pair-Id=K&Expires=-1796655386&Signature=s",
        f"{BLOB}?Key-Pair-Id=K&Expires=1796655386&Expires=1796655387&Signature=s",
        f"{BLOB}?Key-Pair-Id=K&Expires=179665538600000&Signature=s",
        f"{BLOB}?Key-Pair-Id=K&Expires=&Signature=s",
        f"{BLOB}?Key-Pair-Id=K&Policy=eyJTdGF0ZW1lbnQiOltdfQ__&Signature=s",
        # An Azure SAS
        sas("2026-12-07T15:00:00"),
        sas("2026-12-07T15:00:00z"),
        sas("2026-12-07 15:00:00Z"),
        sas("2026-12-07T15Z"),
        sas("2026-12-07T25:00:00Z"),
        sas("2026-02-30"),
        sas("2026-12-07T15:00:00+24:00"),
        sas("2026-12-07T15:00:00+02:60"),
        sas("07/12/2026"),
        sas(""),
        sas("2026-12-07") + "&se=2026-12-08",
        "https://acct.blob.core.windows.net/c/b?si=policy&sig=x&sp=r",
        # A readable scheme beside one that is not: crev vouches for neither.
        sigv4() + "&sig=x",
    ],
)
def test_a_signature_that_does_not_say_its_expiry_readably_has_none(url: str) -> None:
    assert signed_until(url) is None
