"""The API's kept answers: after any sequence of changes the kept VM list is exactly what
building every answer afresh gives, though it rebuilds only the VMs that changed."""

from __future__ import annotations

import json
import random

import pytest

from corral.api.answers import Answers
from corral.api.views import vm_out
from corral.cluster import keys
from corral.cluster.models import Placement, RunState, VMConfig, VMRuntime, VMStatus
from corral.cluster.records import dump
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.view_state import Change, ViewState


class StubView:
    """What Answers reads of a ClusterView: its state."""

    def __init__(self) -> None:
        self.state = ViewState()

    def snapshot(self, now: float) -> ClusterSnapshot:
        return self.state.snapshot(now)


def fresh(state: ViewState) -> list[object]:
    snap = state.snapshot(0.0)
    online = {n.name for n in snap.nodes.values() if n.alive}
    return [json.loads(vm_out(vm, vm.placement.node in online).model_dump_json())
            for vm in snap.vms.values()]


def random_change(rng: random.Random, revision: int) -> list[Change]:
    vmid, node = rng.randint(100, 140), rng.choice(["n1", "n2", "n3"])
    roll = rng.random()
    if roll < 0.3:
        return [Change(keys.vm(vmid, "config"),
                       dump(VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=64, cores=1)),
                       revision),
                Change(keys.vm(vmid, "placement"),
                       dump(Placement(node=node, state=RunState.RUNNING)), revision)]
    if roll < 0.5:
        return [Change(keys.vm(vmid, "runtime"), dump(VMRuntime(
            node=node, status=rng.choice(list(VMStatus)), updated_at=1.0)), revision)]
    if roll < 0.6:
        return [Change(keys.vm(vmid, "placement"), b"{broken", revision)]
    if roll < 0.75:
        return [Change(keys.vm(vmid, f), None, revision) for f in keys.VM_FIELDS]
    if roll < 0.9:
        return [Change(keys.node(node, "alive"), rng.choice([b"1", None]), revision)]
    return [Change(keys.node(node, "usage"), b"{}", revision)]


@pytest.mark.parametrize("seed", range(20))
def test_the_kept_list_equals_a_fresh_build_after_any_changes(seed: int) -> None:
    rng = random.Random(seed)
    view = StubView()
    view.state.reset([], 1)
    answers = Answers(view)  # type: ignore[arg-type]
    revision = 1
    for step in range(150):
        revision += 1
        view.state.apply(random_change(rng, revision))
        view.state.advance(revision)
        if step % 50 == 49:  # listed anew now and then: the kept answers cannot be trusted
            view.state.reset(view.state.items(), revision)
        if rng.random() < 0.5:  # not every change is read before the next
            assert json.loads(answers.vm_list_json()) == fresh(view.state), f"step {step}"
    assert [o.model_dump(mode="json") for o in answers.vm_outs()] == fresh(view.state)
