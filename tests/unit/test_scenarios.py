"""Every tests/scenarios/*.scn, run through the simulator against the real HA decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.sim.runner import run
from corral.sim.scenario import load

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.scn"))


def test_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    result = run(load(path))
    assert result.ok, "\n".join(result.failures + ["--- log ---", *result.log])
