"""Every tests/scenarios/*.scn, run through the simulator against the real HA decisions: its
expectations and invariants hold, and its log is its golden log, line for line
(`corral sim run --update-golden tests/scenarios/NAME.scn` rewrites one on purpose)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.sim import golden
from corral.sim.runner import run
from corral.sim.scenario import load

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.scn"))


def test_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 30


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    result = run(load(path))
    assert result.ok, "\n".join(result.failures + ["--- log ---", *result.log])
    diff = golden.compare(path, result)
    assert diff is None, diff


def test_every_golden_log_has_its_scenario() -> None:
    logs = sorted((Path(__file__).parent.parent / "scenarios").glob("*.log"))
    assert [p.stem for p in logs if not p.with_suffix(".scn").is_file()] == []
