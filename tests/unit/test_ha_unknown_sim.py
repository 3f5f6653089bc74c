"""A VM whose QEMU stops answering (state `unknown`) on the simulator: the world gets a hung
QEMU here (the scenario format has no `hang` event yet), the HA decisions are the real ones,
and the runner's one-owner invariant catches any second copy."""

from __future__ import annotations

from corral.cluster.models import VMStatus
from corral.sim.runner import Run
from corral.sim.scenario import Line, parse
from corral.sim.world import Host

SCENARIO = """
cluster nodes=3 run=90
allow-down 100
vm 100 on n1 ha=started
expect at 55 vm 100 running on n1
expect at 55 vm 100 placed n1
expect at 70 vm 100 running on n1
expect at 70 vm 100 ha started
"""


class HangRun(Run):
    """`hang`/`thaw`: the QEMU process stays, its host reports the VM `unknown` meanwhile."""

    hung: set[int]

    def event(self, ln: Line) -> None:
        if ln.words[0] not in ("hang", "thaw"):
            return super().event(ln)
        vmid = int(ln.words[1])
        self.world.say(f"event: {' '.join(ln.words)}")
        (self.hung.add if ln.words[0] == "hang" else self.hung.discard)(vmid)
        return None


def run_hung() -> tuple[HangRun, list[str], list[str]]:
    sc = parse(SCENARIO, "unknown-vm")
    # Not scenario lines (the format has no such event): added after parsing, in time order.
    sc.events = sorted([*sc.events, (5.0, Line(0, ["hang", "100"], {})),
                        (60.0, Line(0, ["thaw", "100"], {}))], key=lambda e: e[0])
    r = HangRun(sc)
    r.hung = set()
    observe = r.world.monitor

    def monitor(h: Host, busy: set[int]) -> None:
        observe(h, busy)
        for vmid in sorted(r.hung & h.procs):
            r.world.report(h, vmid, VMStatus.UNKNOWN)  # QMP times out, the process lives

    r.world.monitor = monitor  # type: ignore[method-assign]
    result = r.run()
    return r, result.failures, result.log


def test_a_hung_vm_is_waited_for_never_run_twice() -> None:
    r, failures, log = run_hung()
    assert not failures, "\n".join(failures + log)
    assert not any("queue vm.start" in line for line in log), "\n".join(log)
    assert any("state unknown on n1" in line for line in log), "\n".join(log)
    assert r.world.runs_on(100) == ["n1"]
