"""Tags in the order people look for them: `latest`, then versions newest first (`1.10` before
`1.9`, `2.0` before `2.0-rc1`), then every other tag in natural order (`t2` before `t149`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# `1`, `v1.2.3`, `1.2.3-rc1`, `2024.01.05`: a number first, then dotted numbers, then a suffix.
_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:[-+_.~]?(.*))?", re.IGNORECASE)
_NUMBERS = re.compile(r"(\d+)")


def newest_first(tags: Iterable[str]) -> list[str]:
    unique = sorted(set(tags))
    latest = [tag for tag in unique if tag == "latest"]
    versions: list[tuple[str, re.Match[str]]] = []
    others: list[str] = []
    for tag in unique:
        if tag == "latest":
            continue
        if matched := _VERSION.fullmatch(tag):
            versions.append((tag, matched))
        else:
            others.append(tag)
    versions.sort(key=lambda version: _version_key(version[1]), reverse=True)
    others.sort(key=_natural_key)
    return latest + [tag for tag, _ in versions] + others


def _version_key(matched: re.Match[str]) -> tuple[tuple[int, ...], int, tuple[object, ...]]:
    numbers = tuple(int(part) for part in matched[1].split("."))
    suffix = matched[2] or ""
    # A release sorts after (newer than) its pre-releases: 2.0 > 2.0-rc2 > 2.0-rc1.
    return numbers, 0 if suffix else 1, _natural_key(suffix)


def _natural_key(text: str) -> tuple[object, ...]:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in _NUMBERS.split(text)
        if part
    )
