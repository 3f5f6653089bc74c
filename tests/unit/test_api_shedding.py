"""The count of requests in flight: a place is taken while one is free, refusals are counted,
and a bound below one is refused."""

from __future__ import annotations

import pytest

from corral.api.shedding import InFlight


def test_admits_up_to_the_limit_and_counts_refusals() -> None:
    gate = InFlight(2)
    assert gate.admit() and gate.admit()
    assert not gate.admit() and not gate.admit()
    assert (gate.current, gate.refused) == (2, 2)
    gate.release()
    assert gate.admit() and (gate.current, gate.refused) == (2, 2)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlight(0)
