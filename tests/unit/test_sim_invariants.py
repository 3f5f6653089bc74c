"""The simulator's checks catch what they are there for."""

from __future__ import annotations

import pytest

from corral.sim.runner import Run
from corral.sim.scenario import ScenarioError, parse

CUT = """
cluster nodes=3 ttl=10 watchdog=5 run=60
vm 100 on n2 ha=started
at 10 net-off n2
expect at 45 vm 100 running on !n2
"""


def test_safe_configuration_passes() -> None:
    assert Run(parse(CUT)).run().ok


def test_recovery_before_the_watchdog_fires_is_caught() -> None:
    # A host whose watchdog fires later than the manager assumes (misconfigured: longer than
    # the lease) still runs the VM when it is recovered: two owners.
    r = Run(parse(CUT))
    r.world.watchdog = 30
    result = r.run()
    assert any("one-owner" in f for f in result.failures)


def test_ha_bound_is_checked() -> None:
    text = CUT.replace("expect at 45 vm 100 running on !n2", "bound 5")
    result = Run(parse(text)).run()
    assert any("ha-bound" in f for f in result.failures)


def test_failed_expectation_is_reported() -> None:
    result = Run(parse(CUT.replace("!n2", "n2"))).run()
    assert not result.ok and "runs on" in result.failures[0]


def test_bad_lines_name_the_line() -> None:
    with pytest.raises(ScenarioError, match="line 2"):
        parse("cluster nodes=1\nfrobnicate n1\n")


def test_run_is_deterministic() -> None:
    assert Run(parse(CUT)).run().log == Run(parse(CUT)).run().log
