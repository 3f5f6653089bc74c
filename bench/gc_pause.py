"""The garbage collector's full passes in a process that holds a large view: how long each
pauses the process, with survivors of a full pass frozen (`cluster/view_gc.py`) and, as the
baseline in the same run, with only the listing frozen.

    .venv/bin/python bench/gc_pause.py [--vms 5000] [--changes 20000] [--hosts 64]

Each mode runs in a fresh process. The view learns its VMs from watch events after an empty
listing, as an API does when the VMs are created after it started, and the API's answers (a
VM list of every VM) are kept beside it. Then VM records change one at a time, as agents
update them: the VM list is asked for after every 20 changes, one host's VMs are answered
after each (an answer built and dropped, as a request's is), and a full pass is started after
every 2,000. No etcd and no I/O: the pauses are the collector's alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from corral.api.answers import Answers
from corral.api.views import vm_out
from corral.cluster import keys
from corral.cluster.models import NodeInfo, Placement, RunState, VMConfig, VMRuntime, VMStatus
from corral.cluster.records import dump
from corral.cluster.view import ClusterView
from corral.cluster.view_gc import OLDEST, FullPassFreezer
from corral.cluster.view_state import Change

MODES = ("listing frozen only", "full passes' survivors frozen")
ASK_EVERY = 20  # changes between two VM lists
# Changes between two full passes: the collector starts them by counts that this small loop
# reaches far more slowly than an API serving requests does, so they are asked for here.
FULL_EVERY = 2000


class Pauses:
    """gc.callbacks entry timing each full pass (wall time: the process serves nothing)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.full: list[float] = []
        self.young: list[float] = []

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        (self.full if info["generation"] == OLDEST else self.young).append(took)


def run_mode(mode: int, vms: int, changes: int, hosts: int) -> dict[str, Any]:
    view = ClusterView(store=None)  # type: ignore[arg-type]  # fed by hand, never started
    state = view.state
    answers = Answers(view)
    state.reset([], 1)
    gc.freeze()  # what `freeze_listed` does once the view has listed
    pauses = Pauses()
    gc.callbacks.append(pauses)
    if mode == 1:
        gc.callbacks.append(FullPassFreezer())
    rev = 1
    snap = view.snapshot(0.0)
    batch: list[Change] = []
    for h in range(hosts):
        name = f"h{h:03d}"
        rev += 1
        batch += [Change(keys.node(name, "info"), dump(NodeInfo(name=name, cpus=64,
                                                                memory_mb=524288)), rev),
                  Change(keys.node(name, "alive"), b"1", rev)]
    state.apply(batch)
    state.advance(rev)
    for k in range(vms):  # created after the listing: not frozen by it
        vmid, node = 100 + k, f"h{k % hosts:03d}"
        rev += 1
        state.apply([
            Change(keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid, name=f"vm{vmid}",
                                                          memory_mb=1024, cores=2)), rev),
            Change(keys.vm(vmid, "placement"),
                   dump(Placement(node=node, state=RunState.RUNNING)), rev)])
        state.advance(rev)
        if k % ASK_EVERY == 0:
            answers.vm_list_json()
    pauses.full.clear()
    pauses.young.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(changes):
        vmid = 100 + (i * 7919) % vms
        rev += 1
        state.apply([Change(keys.vm(vmid, "runtime"), dump(VMRuntime(
            node=f"h{(vmid - 100) % hosts:03d}", status=VMStatus.RUNNING, pid=1000 + i,
            updated_at=float(i))), rev)])
        state.advance(rev)
        if i % ASK_EVERY == 0:
            snap = view.snapshot(float(i))
            answers.vm_list_json()
        # A request's answer, built and dropped: what drives the young passes in an API.
        page = [vm_out(vm) for vm in snap.vms_on(f"h{i % hosts:03d}")]
        del page
        if i % FULL_EVERY == FULL_EVERY - 1:
            gc.collect(OLDEST)  # as the collector starts one on its own, timed the same way
    return {"full": pauses.full, "young": pauses.young,
            "cpu": time.process_time() - cpu0, "wall": time.perf_counter() - wall0}


def ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=20000)
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--mode", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode is not None:  # one mode, in a process of its own
        json.dump(run_mode(args.mode, args.vms, args.changes, args.hosts), sys.stdout)
        return
    print(f"gc pauses, {args.vms} VMs on {args.hosts} hosts, {args.changes} VM changes "
          f"(a VM list every {ASK_EVERY}), Python {sys.version.split()[0]}")
    print(f"  {'mode':<32}{'full passes':>12}{'p50 ms':>9}{'max ms':>9}{'sum ms':>9}"
          f"{'young passes':>14}{'max ms':>9}{'CPU s':>8}")
    results = []
    for mode, label in enumerate(MODES):
        out = subprocess.run([sys.executable, __file__, "--mode", str(mode), "--vms",
                              str(args.vms), "--changes", str(args.changes), "--hosts",
                              str(args.hosts)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        results.append(r)
        print(f"  {label:<32}{len(r['full']):>12}{ms(r['full'], 0.5):>9}{ms(r['full'], 1):>9}"
              f"{sum(r['full']) * 1000:>9.0f}{len(r['young']):>14}{ms(r['young'], 1):>9}"
              f"{r['cpu']:>8.2f}")
    base, now = (max(r["full"], default=0.0) for r in results)
    median = statistics.median(results[1]["full"]) if results[1]["full"] else 0.0
    print(f"  longest full pass: {base * 1000:.1f} ms -> {now * 1000:.1f} ms "
          f"(median now {median * 1000:.1f} ms; one in {600:.0f} s walks everything again)")


if __name__ == "__main__":
    main()
