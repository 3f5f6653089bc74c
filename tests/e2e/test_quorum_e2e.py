"""Quorum in labs built as an admin builds a cluster (hosts in network namespaces): two hosts
without a witness lose their quorum with either host and start nothing of the dead one's,
fencing their own HA VMs; a witness lets either host go and changes nothing when it goes
itself; a host cut off from two others fences its HA VMs, the pair recovers them, and after
the heal each VM runs once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.lab.layout import LabLayout
from tests.e2e.conftest import FAULT_LAB_ARGS, LEASE_TTL, WATCHDOG_TIMEOUT, need_root
from tests.e2e.labtools import Lab, running_lab, wait_until
from tests.e2e.test_ha_e2e import lab_qemus

pytestmark = pytest.mark.e2e

# A lost host's VMs may run elsewhere once its lease expired and the HA margin passed
# (ha.nodes.recovery_wait: with the lab's timings the fence is within the lease).
FENCE_WAIT = LEASE_TTL + 2.0
WINDOW = 3 * FENCE_WAIT  # watched for what must not happen
SETTLE = 5.0
SLACK = 10.0  # a loaded 2-core machine
N1_VM, N2_VM, N3_VM = 100, 101, 102  # tiny1.. as `lab up` places them: round-robin

Copies = dict[int, list[tuple[str, int]]]


# --- labs ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "qpair-", "--vms", "2", "--cluster", *FAULT_LAB_ARGS,
                     nodes=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def witness_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "qwit-", "--vms", "2", "--cluster", "--witness",
                     *FAULT_LAB_ARGS, nodes=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def trio_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "qtrio-", "--vms", "3", "--cluster", *FAULT_LAB_ARGS) as lab:
        yield lab


# --- helpers ---------------------------------------------------------------------------------

def layout(lab: Lab) -> LabLayout:
    loaded = LabLayout.load(lab.root)
    assert loaded is not None and loaded.cluster_mode
    return loaded


def status_on(lab: Lab, host: str) -> dict[str, Any]:
    """`corral cluster status --json` as run on the host itself: it reads the host's own etcd
    member, so it answers without a quorum."""
    lay = layout(lab)
    i = lay.machine_index(host)
    done = subprocess.run(
        ["ip", "netns", "exec", lay.netns_name(i), sys.executable, "-m", "corral.cli.main",
         "cluster", "status", "--host-config", str(lay.host_config_path(i)), "--json"],
        env=lab.env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"cluster status on {host}: {done.stderr}"
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def copies(lab: Lab) -> Copies:
    """vmid -> [(host, pid)] of every live QEMU of the lab."""
    return lab_qemus(lab.root)


def placed(lab: Lab, where: dict[int, str]) -> Copies | None:
    """The QEMU copies once each VM runs once, on the host given; else None."""
    found = copies(lab)
    if all([h for h, _ in found.get(vmid, [])] == [host] for vmid, host in where.items()):
        return found
    return None


def make_ha(lab: Lab, where: dict[int, str]) -> Copies:
    for vmid in where:
        lab.corral("ha", "add", str(vmid))
    found: Copies = wait_until(lambda: placed(lab, where), 90, f"HA VMs running as {where}")
    return found


def running_on(lab: Lab, vmid: int, hosts: set[str]) -> str | None:
    """The host vmid runs on, once the API says it runs on one of `hosts` and exactly one
    QEMU of it runs there."""
    vm = next((v for v in lab.json("vm", "list") if v["vmid"] == vmid), None)
    if vm is None or vm["status"] != "running" or vm["node"] not in hosts:
        return None
    host = str(vm["node"])
    return host if [h for h, _ in copies(lab).get(vmid, [])] == [host] else None


def healthy_voters(lab: Lab, count: int) -> bool:
    status = lab.json("cluster", "status")
    return bool(status["quorum"]) and len(status["healthy_voters"]) == count


class Watch:
    """Samples the lab's QEMU processes on a thread; `check` is told each sample and
    returns a violation or None."""

    def __init__(self, lab: Lab, check: Callable[[Copies], str | None]) -> None:
        self.lab, self.check = lab, check
        self.violations: list[str] = []
        self.samples: list[tuple[float, Copies]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = copies(self.lab)
            self.samples.append((time.monotonic() - self._t0, found))
            if (bad := self.check(found)) is not None:
                self.violations.append(f"{time.monotonic() - self._t0:.1f}s: {bad}")
            self._stop.wait(0.3)

    def gone_after(self, vmid: int) -> float | None:
        """Seconds from the start until vmid's last copy was gone for good."""
        last = None
        for t, found in self.samples:
            if vmid in found:
                last = None
            elif last is None:
                last = t
        return last


# --- two hosts, no witness -------------------------------------------------------------------

def test_removing_the_last_but_one_voter_is_refused_with_the_reason(pair_lab: Lab) -> None:
    lab = pair_lab
    before = lab.json("cluster", "status")
    assert sorted(before["voters"]) == ["n1", "n2"] and not before["witnesses"]
    done = lab.corral("cluster", "remove-node", "n2", "--yes", check=False)
    assert done.returncode != 0, done.stdout
    assert "last but one voter" in done.stderr and "add a host or a witness" in done.stderr, \
        done.stderr
    after = lab.json("cluster", "status")
    assert (sorted(after["voters"]), sorted(h["name"] for h in after["hosts"])) == (
        ["n1", "n2"], ["n1", "n2"])


def test_two_hosts_one_lost_the_survivor_has_no_quorum_and_starts_nothing(
        pair_lab: Lab) -> None:
    lab = pair_lab
    before = make_ha(lab, {N1_VM: "n1", N2_VM: "n2"})
    assert lab.json("cluster", "status")["quorum"]
    fenced_before = (lab.root / "logs/n1-watchdog.log").read_text().count("FENCED")

    def n1_runs_nothing_of_n2(found: Copies) -> str | None:
        return f"VM {N2_VM} runs: {found[N2_VM]}" if N2_VM in found else None

    lab.corral("lab", "kill-node", "n2")
    t0 = time.monotonic()
    with Watch(lab, n1_runs_nothing_of_n2) as watch:
        status = wait_until(lambda: (s := status_on(lab, "n1")) and not s["quorum"] and s,
                            20, "n1 saying it has no quorum")
        print(f"n1: no quorum {time.monotonic() - t0:.1f}s after n2 died")
        assert status["voters"] and sorted(status["voters"]) == ["n1", "n2"]
        # n1 may still name itself leader until etcd's check-quorum makes it step down.
        assert "n2" not in status["healthy_voters"]
        # n1's own HA VM: its agent renews no lease without a quorum, so it feeds its
        # watchdog no more, which kills the VM.
        wait_until(lambda: N1_VM not in copies(lab), LEASE_TTL + WATCHDOG_TIMEOUT + SLACK,
                   f"n1's watchdog fencing VM {N1_VM}")
        print(f"n1 fenced VM {N1_VM} {time.monotonic() - t0:.1f}s after n2 died")
        time.sleep(max(0.0, WINDOW - (time.monotonic() - t0)))
    assert not watch.violations, "\n".join(watch.violations)
    assert len(watch.samples) > WINDOW  # sampled all along (every 0.3s, when not starved)
    assert (lab.root / "logs/n1-watchdog.log").read_text().count("FENCED") > fenced_before
    # Nothing came back on n1 either: no lease, no start.
    assert not copies(lab), f"VMs run without a quorum: {copies(lab)}"
    assert not status_on(lab, "n1")["quorum"]
    assert before[N1_VM][0][0] == "n1"


# --- two hosts and a witness -----------------------------------------------------------------

def test_the_witness_is_a_voter_that_runs_no_agent_and_no_vms(witness_lab: Lab) -> None:
    lab, lay = witness_lab, layout(witness_lab)
    status = lab.json("cluster", "status")
    assert status["quorum"] and len(status["voters"]) == 3 == len(status["healthy_voters"])
    assert len(status["witnesses"]) == 1 and "w" in status["witnesses"][0], status["witnesses"]
    assert {h["name"] for h in status["hosts"] if h["agent_online"]} == {"n1", "n2"}
    assert {n["name"] for n in lab.json("node", "list")} == {"n1", "n2"}
    children = lab.supervisor()["children"]
    assert children.get("w-etcd") and not any(n.startswith("w-") and n != "w-etcd"
                                              for n in children)
    shown = lab.corral("lab", "status").stdout
    assert f"witness: w at {lay.host_address(3)} in namespace {lay.netns_name(3)}" in shown
    # Its own view of the cluster, read from its member in its namespace, is the same.
    assert status_on(lab, "w")["quorum"]


def test_a_host_lost_the_other_keeps_quorum_and_recovers_its_ha_vm(witness_lab: Lab) -> None:
    lab = witness_lab
    before = make_ha(lab, {N1_VM: "n1", N2_VM: "n2"})
    survivor_pid = before[N1_VM][0][1]

    def survivor_keeps_its_vm(found: Copies) -> str | None:
        return None if found.get(N1_VM) == [("n1", survivor_pid)] else \
            f"VM {N1_VM} on n1 was {survivor_pid}, now {found.get(N1_VM)}"

    lab.corral("lab", "kill-node", "n2")
    t0 = time.monotonic()
    try:
        with Watch(lab, survivor_keeps_its_vm) as watch:
            wait_until(lambda: running_on(lab, N2_VM, {"n1"}), FENCE_WAIT + 40,
                       f"VM {N2_VM} recovered on n1")
            print(f"VM {N2_VM} recovered on n1 {time.monotonic() - t0:.1f}s after n2 died")
            status = lab.json("cluster", "status")
            assert status["quorum"] and len(status["healthy_voters"]) == 2
            assert "n2" not in status["healthy_voters"]
        assert not watch.violations, "\n".join(watch.violations)
    finally:
        lab.corral("lab", "start-node", "n2")
    wait_until(lambda: healthy_voters(lab, 3), 60, "n2 back as a healthy voter")
    time.sleep(SETTLE)
    assert placed(lab, {N1_VM: "n1", N2_VM: "n1"}), f"a second copy: {copies(lab)}"


def test_the_witness_lost_nothing_happens_to_any_vm(witness_lab: Lab) -> None:
    lab = witness_lab
    wait_until(lambda: healthy_voters(lab, 3), 60, "three healthy voters")
    before = wait_until(lambda: (found := copies(lab)) and all(len(c) == 1
                                                               for c in found.values())
                        and found, 30, "each VM running once")
    hosts_before = {v["vmid"]: v["node"] for v in lab.json("vm", "list")}

    def unchanged(found: Copies) -> str | None:
        return None if found == before else f"QEMU copies were {before}, now {found}"

    lab.corral("lab", "kill-node", "w")
    try:
        with Watch(lab, unchanged) as watch:
            wait_until(lambda: healthy_voters(lab, 2), 30, "the two hosts as the quorum")
            status = lab.json("cluster", "status")
            assert sorted(status["healthy_voters"]) == ["n1", "n2"]
            assert {h["name"] for h in status["hosts"] if h["agent_online"]} == {"n1", "n2"}
            time.sleep(WINDOW)
        assert not watch.violations, "\n".join(watch.violations)
        assert {v["vmid"]: v["node"] for v in lab.json("vm", "list")} == hosts_before
        assert all(v["status"] == "running" for v in lab.json("vm", "list"))
        assert "FENCED" not in "".join((lab.root / "logs" / f"{h}-watchdog.log").read_text()
                                       for h in ("n1", "n2"))
    finally:
        lab.corral("lab", "start-node", "w")
    wait_until(lambda: healthy_voters(lab, 3), 60, "the witness back as a healthy voter")


# --- three hosts: a partition of 2+1 ---------------------------------------------------------

def test_partition_two_and_one_the_one_fences_the_pair_recovers_then_each_vm_runs_once(
        trio_lab: Lab) -> None:
    lab = trio_lab
    before = make_ha(lab, {N1_VM: "n1", N2_VM: "n2", N3_VM: "n3"})
    pair = {vmid: copies_[0] for vmid, copies_ in before.items() if vmid != N3_VM}

    def pair_carries_on(found: Copies) -> str | None:
        for vmid, copy in pair.items():
            if found.get(vmid) != [copy]:
                return f"VM {vmid} was {copy}, now {found.get(vmid)}"
        return None

    lab.corral("lab", "partition", "n3")
    t0 = time.monotonic()
    try:
        with Watch(lab, pair_carries_on) as watch:
            # n3 keeps no lease without the majority: its watchdog kills its HA VM.
            wait_until(lambda: ("n3", before[N3_VM][0][1]) not in copies(lab).get(N3_VM, []),
                       LEASE_TTL + WATCHDOG_TIMEOUT + SLACK, f"n3 fencing VM {N3_VM}")
            print(f"n3 fenced VM {N3_VM} {time.monotonic() - t0:.1f}s after the partition")
            home = wait_until(lambda: running_on(lab, N3_VM, {"n1", "n2"}), FENCE_WAIT + 40,
                              f"VM {N3_VM} recovered by the pair")
            print(f"VM {N3_VM} recovered on {home} {time.monotonic() - t0:.1f}s after "
                  "the partition")
            status = lab.json("cluster", "status")
            assert status["quorum"] and sorted(status["healthy_voters"]) == ["n1", "n2"]
            assert not status_on(lab, "n3")["quorum"]
        assert not watch.violations, "\n".join(watch.violations)
    finally:
        lab.corral("lab", "heal", "n3")
    wait_until(lambda: healthy_voters(lab, 3), 60, "n3 back as a healthy voter")
    wait_until(lambda: {h["name"] for h in lab.json("cluster", "status")["hosts"]
                        if h["agent_online"]} == {"n1", "n2", "n3"}, 40, "n3's agent online")
    time.sleep(SETTLE)
    after = copies(lab)
    assert after == {**{v: [c] for v, c in pair.items()}, N3_VM: [(home, after[N3_VM][0][1])]}, \
        f"after the heal: {after}"
    shown = {v["vmid"]: v["node"] for v in lab.json("vm", "list")}
    assert shown == {N1_VM: "n1", N2_VM: "n2", N3_VM: home}
