"""Tags in the order people look for them."""

from __future__ import annotations

from crev.tag_order import newest_first


def test_versions_are_newest_first_and_latest_leads() -> None:
    tags = ["1.9", "t149", "1.10", "latest", "v2.0.0", "2.0.0-rc1", "t2", "main", "1.10.1", "0.1"]
    assert newest_first(tags) == [
        "latest",
        "v2.0.0",
        "2.0.0-rc1",
        "1.10.1",
        "1.10",
        "1.9",
        "0.1",
        "main",
        "t2",
        "t149",
    ]


def test_pre_releases_come_after_their_release_and_in_natural_order() -> None:
    assert newest_first(["2.0-rc10", "2.0-rc2", "2.0", "1.0"]) == [
        "2.0",
        "2.0-rc10",
        "2.0-rc2",
        "1.0",
    ]


def test_duplicates_and_dates() -> None:
    assert newest_first(["2024.01.05", "2023.12.31", "2024.01.05"]) == ["2024.01.05", "2023.12.31"]
