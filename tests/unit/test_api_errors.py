"""Mapping validation locations to field names."""

from __future__ import annotations

from corral.api.errors import loc_to_field


def test_loc_to_field() -> None:
    assert loc_to_field(("body", "memory_mb")) == "memory_mb"
    assert loc_to_field(("body", "disks", 0)) == "disks[0]"
    assert loc_to_field(("query", "limit")) == "limit"
    assert loc_to_field(("body", "a", 2, "b")) == "a[2].b"
    assert loc_to_field(("body",)) is None
