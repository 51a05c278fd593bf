"""When a signed storage URL stops working, read from its own query.

Registries answer a blob read with a redirect to storage, by a URL signed for a while; the
signature schemes say how long in the query:

- S3 (and R2, MinIO, Spaces) SigV4: `X-Amz-Date` (`20261207T143626Z`) plus `X-Amz-Expires`
  seconds, signed by `X-Amz-Signature`;
- S3 SigV2 and GCS V2: `Expires` (Unix seconds) beside `Signature` and `AWSAccessKeyId` or
  `GoogleAccessId`;
- GCS V4: `X-Goog-Date` plus `X-Goog-Expires`, signed by `X-Goog-Signature`;
- Azure SAS (ghcr.io's `pkg-containers.githubusercontent.com`): `se`, an ISO 8601 instant or
  day, signed by `sig`;
- CloudFront canned policy: `Expires` (Unix seconds) beside `Signature` and `Key-Pair-Id`.

A query that starts one of these but does not finish it readably (a parameter missing, given
twice, malformed or out of range) has no readable expiry: crev vouches for no lifetime it cannot
read. Neither has a URL signed by none of these schemes. Where several schemes are named, the
earliest expiry is the URL's.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit

# S3 and GCS sign a URL for a week at most.
MAX_SIGNED_SECONDS = 7 * 24 * 3600
# The patterns are ASCII (`\d` alone takes any script's digits), and compiled on first use, by
# `re`'s own cache: compiling them all at import was a visible part of a cold start.
# `20261207T143626Z`: SigV4's and GCS V4's basic ISO 8601 instant, UTC.
_BASIC_INSTANT = r"(?a)(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z"
# Azure's `se`: a day, or an instant to the minute or second (fractions allowed) with its offset.
_SAS_EXPIRY = (
    r"(?a)(?P<day>\d{4}-\d{2}-\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d{1,7})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2}))?"
)
# Unix seconds, up to the year 5138: enough digits for any real expiry, too few to overflow.
_EPOCH_SECONDS = r"(?a)\d{1,11}"
_DIGITS = r"(?a)\d{1,7}"


class _UnreadableError(Exception):
    """A signature scheme's parameters are there, but not readably."""


def signed_until(url: str) -> int | None:
    """The Unix time at which the signed storage URL `url` stops working, if its query says so
    readably; None otherwise."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    params = _query_params(query)
    try:
        expiries = [
            expiry
            for expiry in (
                _sigv4(params, "x-amz-"),
                _sigv4(params, "x-goog-"),
                _expires(params),
                _sas(params),
            )
            if expiry is not None
        ]
    except _UnreadableError:
        return None
    return min(expiries, default=None)


def _query_params(query: str) -> dict[str, list[str]]:
    """Each parameter's values, by its name in lower case (S3 and GCS read names so). Values
    are percent-decoded only: a `+` stays a `+`, as in an Azure offset."""
    params: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params.setdefault(unquote(name).lower(), []).append(unquote(value))
    return params


def _one(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name, [])
    if len(values) != 1 or not values[0]:
        raise _UnreadableError(name)
    return values[0]


def _sigv4(params: dict[str, list[str]], prefix: str) -> int | None:
    """S3's SigV4 (`x-amz-`) or GCS's V4 (`x-goog-`): signed at `Date`, for `Expires` seconds."""
    named = {f"{prefix}date", f"{prefix}expires", f"{prefix}signature"}
    if not named & params.keys():
        return None
    _one(params, f"{prefix}signature")
    signed_at = _basic_instant(_one(params, f"{prefix}date"))
    lifetime = _one(params, f"{prefix}expires")
    if not re.fullmatch(_DIGITS, lifetime) or not 0 < int(lifetime) <= MAX_SIGNED_SECONDS:
        raise _UnreadableError(f"{prefix}expires")
    return signed_at + int(lifetime)


def _basic_instant(text: str) -> int:
    match = re.fullmatch(_BASIC_INSTANT, text)
    if match is None:
        raise _UnreadableError(text)
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        instant = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _UnreadableError(text) from None
    return int(instant.timestamp())


# The key parameters that say an `Expires` is a signature's: S3 SigV2, GCS V2, CloudFront.
_EXPIRES_KEYS = frozenset({"awsaccesskeyid", "googleaccessid", "key-pair-id"})


def _expires(params: dict[str, list[str]]) -> int | None:
    """S3 SigV2, GCS V2 or a CloudFront canned policy: `Expires`, in Unix seconds."""
    if "expires" not in params or not _EXPIRES_KEYS & params.keys():
        return None
    _one(params, "signature")
    expires = _one(params, "expires")
    if not re.fullmatch(_EPOCH_SECONDS, expires):
        raise _UnreadableError("expires")
    return int(expires)


def _sas(params: dict[str, list[str]]) -> int | None:
    """An Azure shared access signature: `se`, the instant (or day) the signature ends."""
    if "sig" not in params:
        return None
    _one(params, "sig")
    text = _one(params, "se")
    match = re.fullmatch(_SAS_EXPIRY, text)
    if match is None:
        raise _UnreadableError("se")
    try:
        day = date.fromisoformat(match["day"])
        if match["zone"] is None:
            # A day alone: the signature ends as it begins, at midnight UTC (the earlier reading).
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        instant = datetime(
            day.year,
            day.month,
            day.day,
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            tzinfo=_zone(match["zone"]),
        )
    except ValueError:
        raise _UnreadableError("se") from None
    return int(instant.timestamp())


def _zone(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(text)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
