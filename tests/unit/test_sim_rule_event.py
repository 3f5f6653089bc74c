"""The scenario format adds (or changes) an HA rule at a time: `at T rule ...`, checked like
a set-up `rule` line."""

from __future__ import annotations

import pytest

from corral.sim.runner import Run
from corral.sim.scenario import ScenarioError, parse


@pytest.mark.parametrize(("text", "message"), [
    ("at 5 rule together pair 100\n", "line 2: rule pair: vms: affinity needs at least two"),
    ("at 5 rule prefer db n9:1 vms=100\n", "line 2: no host 'n9'"),
    ("at 5 rule prefer db n1:1\n", "line 2: a prefer rule needs vms="),
    ("at 5 rule anti x 100,101 vms=100\n", "line 2: unknown option 'vms='"),
])
def test_a_rule_event_is_checked_like_a_rule_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse("cluster nodes=2\n" + text)


def test_a_rule_event_adds_the_rule_then_changes_it() -> None:
    r = Run(parse("""
cluster nodes=3 run=40
vm 100 on n1 ha=started
at 5 rule prefer pinned n2:1 vms=100 strict
at 20 rule prefer pinned n3:1 vms=100 strict
expect at 15 vm 100 running on n2
expect at 35 vm 100 running on n3
"""))
    result = r.run()
    assert result.ok, "\n".join(result.failures + result.log)
    assert "adds rule pinned" in "\n".join(result.log)
    assert "changes rule pinned" in "\n".join(result.log)
    assert r.world.store.rules["pinned"].nodes == {"n3": 1}
