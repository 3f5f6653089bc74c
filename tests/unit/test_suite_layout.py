"""The suite's own shape: pytest imports test modules of rootdir-less folders by base name,
so two test files of one name in tests/unit and tests/integration break the whole run at
collection (as happened twice)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(p.name for folder in ("unit", "integration")
                    for p in (TESTS / folder).glob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
