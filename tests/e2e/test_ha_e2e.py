"""HA recovery on a lab in network namespaces: a host is lost (power loss, a frozen agent, a
a cut from etcd alone), its HA VM runs again on another host once the lost host is surely fenced,
and the host's return never brings a second copy.

While each fault plays out, a background thread checks the invariants continuously: no VM
runs on two hosts at once, no VM config is lost, and (checked after each fault) every HA VM
was down no longer than the bound the timings imply.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from corral.ha.models import HATiming
from corral.lab import faults
from corral.lab.layout import LabLayout
from tests.e2e.conftest import FAULT_LAB_ARGS, LEASE_TTL, WATCHDOG_TIMEOUT, need_root
from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.e2e

# The manager fences a lost host at lost_at + the host's watchdog timeout + margin.
FENCE_AFTER = WATCHDOG_TIMEOUT + HATiming().margin
# Queueing and running the start task, a manager tick or two, a loaded 2-core machine.
START_SLACK = 8.0
BOOT = 12.0  # the tiny guest under TCG, from QEMU's start to its first heartbeat
# From the fault to a live QEMU of the HA VM on its new host: the lease may have been renewed
# just before the fault, so it lasts up to a whole TTL after it.
PROCESS_BOUND = LEASE_TTL + FENCE_AFTER + START_SLACK
HEARTBEAT_BOUND = PROCESS_BOUND + BOOT
SETTLE = 5.0  # after a host's return: monitor passes and manager ticks that could misbehave

HA_VMS = (100, 101)  # tiny1 on n1, tiny2 on n2
PLAIN_VM = 103  # tiny4, beside tiny1 on n1, without HA
SAMPLE_EVERY = 0.3


def heartbeats(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"corral-heartbeat (\d+)", text)]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _argv(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _launcher(ppid: int) -> bool:
    """QEMU's -daemonize: the process the agent started waits, until the daemon it forked is
    ready, beside that daemon; its parent is still the agent. It is one VM starting."""
    argv = _argv(ppid)
    return b"agent" in argv and b"run" in argv


def lab_qemus(root: Path, launching: bool = False) -> dict[int, list[tuple[str, int]]]:
    """vmid -> [(host, pid)] of every live QEMU of the lab, found through /proc rather than
    pidfiles alone: a copy whose pidfile was overwritten or removed still counts. One start
    is a chain of up to three processes (-daemonize forks twice: the process the agent
    started, a middle one, the daemon); unless `launching`, it counts once, by the last of
    its chain alive, and not at all while only the agent's own child is there."""
    runs = re.compile(re.escape(str(root / "nodes")) + r"/(n\d+)/run/(\d+)\.pid$")
    procs: dict[int, tuple[str, int, int]] = {}  # pid -> (host, vmid, parent pid)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        argv = _argv(int(entry.name))
        if b"-pidfile" not in argv:
            continue
        i = argv.index(b"-pidfile")
        m = runs.match(argv[i + 1].decode(errors="replace")) if i + 1 < len(argv) else None
        stat = _proc_stat(int(entry.name)) if m is not None else None
        if m is None or stat is None or stat[0] in ("Z", "X"):
            continue
        procs[int(entry.name)] = (m.group(1), int(m.group(2)), stat[1])
    # A process with a live child of the same VM is an earlier link of that child's chain.
    links = {(parent, vmid) for _, vmid, parent in procs.values()}
    found: dict[int, list[tuple[str, int]]] = {}
    for pid, (host, vmid, parent) in sorted(procs.items()):
        if launching or ((pid, vmid) not in links and not _launcher(parent)):
            found.setdefault(vmid, []).append((host, pid))
    return found


@dataclass
class Invariants:
    """Samples the lab every SAMPLE_EVERY seconds on a thread until stopped (or max_seconds)."""

    lab: Lab
    vmids: set[int]
    max_seconds: float = 150.0
    violations: list[str] = field(default_factory=list)
    # vmid -> longest stretch (seconds) without a live QEMU anywhere, and the current one.
    longest_down: dict[int, float] = field(default_factory=dict)
    samples: int = 0
    _down_since: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Invariants:
        self._thread = threading.Thread(target=self._run, name="ha-invariants", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        self._close_downtimes(time.monotonic())

    def _run(self) -> None:
        lay = LabLayout.load(self.lab.root)
        assert lay is not None
        token = lay.token_path.read_text().strip()
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=f"{lay.api_url}/api/v1", timeout=3.0,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.sample(api)
                self._stop.wait(SAMPLE_EVERY)

    def sample(self, api: httpx.Client) -> None:
        now = time.monotonic()
        # Across hosts every QEMU counts, even one still launching: that is a second copy on
        # its way. On one host, the launcher beside its own daemon is no second copy.
        for vmid, copies in sorted(lab_qemus(self.lab.root, launching=True).items()):
            if len({host for host, _ in copies}) > 1:
                self.violations.append(f"VM {vmid} runs on two hosts at once: {copies}")
        qemus = lab_qemus(self.lab.root)
        for vmid, copies in sorted(qemus.items()):
            if len(copies) > 1:
                self.violations.append(f"VM {vmid} runs twice on one host: {copies}")
        for vmid in self.vmids:
            if vmid in qemus:
                self._close_downtimes(now, vmid)
            else:
                self._down_since.setdefault(vmid, now)
        # The API is a process of its own: reading it every third sample keeps the load low.
        if self.samples % 3 == 0:
            try:
                listed = {vm["vmid"] for vm in api.get("/vms").json()}
            except (httpx.HTTPError, ValueError, TypeError):
                listed = None  # a slow answer is no lost config; the next sample asks again
            if listed is not None and not self.vmids <= listed:
                self.violations.append(f"VM config lost: {sorted(self.vmids - listed)}")
        self.samples += 1

    def _close_downtimes(self, now: float, vmid: int | None = None) -> None:
        for v in [vmid] if vmid is not None else list(self._down_since):
            since = self._down_since.pop(v, None)
            if since is not None:
                self.longest_down[v] = max(self.longest_down.get(v, 0.0), now - since)

    def check(self) -> None:
        assert self.samples > 10, f"the invariant thread sampled only {self.samples} times"
        # Dedupe: one violation lasts several samples.
        assert not self.violations, "\n".join(dict.fromkeys(self.violations))


@pytest.fixture(scope="module")
def ha_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "halab-", "--vms", "4", *FAULT_LAB_ARGS) as lab:
        for vmid in HA_VMS:
            lab.corral("ha", "add", str(vmid))
        yield lab


def ha_vms(lab: Lab) -> dict[int, dict[str, object]]:
    return {row["vmid"]: row for row in lab.json("ha", "status")["vms"]}


def online(lab: Lab) -> dict[str, bool]:
    return {n["name"]: bool(n["online"]) for n in lab.json("node", "list")}


def settled(lab: Lab) -> bool:
    """Every host online and every HA VM started where it is placed."""
    if not all(online(lab).values()):
        return False
    rows = ha_vms(lab)
    qemus = lab_qemus(lab.root)
    return all(rows[v]["status"] == "started" and
               [h for h, _ in qemus.get(v, [])] == [rows[v]["node"]] for v in HA_VMS)


@pytest.fixture
def lab(ha_lab: Lab) -> Lab:
    wait_until(lambda: settled(ha_lab), 60, "all hosts online and HA VMs started")
    return ha_lab


def host_of(lab: Lab, vmid: int) -> str:
    host = ha_vms(lab)[vmid]["node"]
    assert isinstance(host, str)
    return host


def fenced_lines(lab: Lab) -> dict[str, int]:
    return {p.stem.removesuffix("-watchdog"): p.read_text().count("FENCED")
            for p in (lab.root / "logs").glob("n*-watchdog.log")}


def recovered(lab: Lab, vmid: int, lost: str, t0: float) -> tuple[str, float]:
    """Wait for vmid's heartbeat on a host other than `lost`; returns the host and the time
    from the fault to that heartbeat."""
    def beating() -> str | None:
        vm = lab.json("vm", "show", str(vmid))
        if vm["node"] == lost or vm["status"] != "running":
            return None
        # The serial log is emptied when QEMU starts: any heartbeat here is the new boot's.
        return vm["node"] if heartbeats(lab.corral("vm", "console", str(vmid)).stdout) else None
    host: str = wait_until(beating, HEARTBEAT_BOUND + 5, f"VM {vmid}'s heartbeat elsewhere")
    took = time.monotonic() - t0
    print(f"VM {vmid}: heartbeat on {host} {took:.1f}s after the fault "
          f"(bound {HEARTBEAT_BOUND:.0f}s)")
    assert took <= HEARTBEAT_BOUND, f"VM {vmid} took {took:.1f}s, bound {HEARTBEAT_BOUND:.0f}s"
    return host, took


def no_second_copy(lab: Lab, vmid: int, home: str, back: str) -> None:
    """After `back` returned: vmid still runs on `home` only, and `back` never started it."""
    time.sleep(SETTLE)
    copies = lab_qemus(lab.root).get(vmid, [])
    assert [h for h, _ in copies] == [home], f"VM {vmid}: {copies}, expected only on {home}"
    assert host_of(lab, vmid) == home
    log = (lab.root / f"logs/{back}-agent.log").read_text()
    assert not re.search(rf"startup: start VM {vmid}\b", log), f"{back} started VM {vmid}"


def others_not_fenced(lab: Lab, before: dict[str, int], lost: str) -> None:
    """Only the lost host's watchdog fired: a fault never costs a healthy host its VMs."""
    after = fenced_lines(lab)
    fired = sorted(n for n in after if after[n] > before.get(n, 0) and n != lost)
    assert not fired, f"healthy hosts fenced: {fired}"


def vmids_kept(lab: Lab) -> None:
    listed = {vm["vmid"] for vm in lab.json("vm", "list")}
    assert {*HA_VMS, PLAIN_VM} <= listed, f"VM configs lost: {listed}"


def test_killed_host_ha_vm_recovers_elsewhere_and_is_not_started_twice(lab: Lab) -> None:
    victim = host_of(lab, HA_VMS[0])
    plain_home = lab.json("vm", "show", str(PLAIN_VM))["node"]
    assert plain_home == victim, "the lab seeds tiny4 beside tiny1"
    before = fenced_lines(lab)
    with Invariants(lab, {*HA_VMS, PLAIN_VM}) as inv:
        t0 = time.monotonic()
        lab.corral("lab", "kill-node", victim)
        try:
            home, _ = recovered(lab, HA_VMS[0], victim, t0)
            # The VM without HA stays down with its host, and is shown as such.
            assert PLAIN_VM not in lab_qemus(lab.root)
            plain = lab.json("vm", "show", str(PLAIN_VM))
            assert plain["node"] == victim
            unprotected = {r["vmid"]: r for r in lab.json("ha", "status")["unprotected"]}
            assert unprotected[PLAIN_VM]["status"] == "stopped", unprotected
            assert victim not in {r["node"] for r in lab.json("ha", "status")["vms"]
                                  if r["vmid"] in HA_VMS}
        finally:
            lab.corral("lab", "start-node", victim)
        wait_until(lambda: online(lab)[victim], 40, f"{victim} back online")
        no_second_copy(lab, HA_VMS[0], home, victim)
    inv.check()
    others_not_fenced(lab, before, victim)
    vmids_kept(lab)
    down = inv.longest_down[HA_VMS[0]]
    print(f"VM {HA_VMS[0]} had no QEMU for {down:.1f}s (bound {PROCESS_BOUND:.0f}s)")
    assert down <= PROCESS_BOUND


def test_frozen_agent_host_is_fenced_and_thawed_agent_leaves_vm_alone(lab: Lab) -> None:
    vmid = HA_VMS[1]
    victim = host_of(lab, vmid)
    before = fenced_lines(lab)
    with Invariants(lab, set(HA_VMS)) as inv:
        t0 = time.monotonic()
        lab.corral("lab", "freeze-agent", victim)
        try:
            # The watchdog kills the frozen host's VMs, before its lease can expire.
            wait_until(lambda: vmid not in lab_qemus(lab.root), WATCHDOG_TIMEOUT + 3,
                       f"{victim}'s watchdog killing VM {vmid}")
            assert fenced_lines(lab)[victim] > before.get(victim, 0)
            home, _ = recovered(lab, vmid, victim, t0)
        finally:
            lab.corral("lab", "thaw-agent", victim)
        wait_until(lambda: online(lab)[victim], 30, f"{victim} back online")
        no_second_copy(lab, vmid, home, victim)
    inv.check()
    others_not_fenced(lab, before, victim)
    vmids_kept(lab)
    assert inv.longest_down[vmid] <= PROCESS_BOUND


def test_host_cut_from_etcd_vm_recovers_elsewhere_and_heal_brings_no_second_copy(lab: Lab
                                                                                ) -> None:
    """The host loses etcd but not its peers (the harder cut: it still reaches the other
    agents, and they it). A whole partition is tested with quorum (test_quorum_e2e)."""
    vmid = HA_VMS[0]
    victim = host_of(lab, vmid)
    before = fenced_lines(lab)
    with Invariants(lab, set(HA_VMS)) as inv:
        t0 = time.monotonic()
        lab.corral("lab", "partition", victim, "--only", "etcd")
        try:
            home, _ = recovered(lab, vmid, victim, t0)
        finally:
            lab.corral("lab", "heal", victim)
        wait_until(lambda: online(lab)[victim], 40, f"{victim} rejoined")
        no_second_copy(lab, vmid, home, victim)
    inv.check()
    others_not_fenced(lab, before, victim)
    vmids_kept(lab)
    assert inv.longest_down[vmid] <= PROCESS_BOUND


def test_unresponsive_vm_is_waited_for_and_never_started_twice(lab: Lab) -> None:
    """A QEMU that stops answering (here: SIGSTOP) may still run its guest: HA must neither
    restart nor relocate it until its host says it stopped or the host is fenced. Once it
    answers again it is the one and only copy, and its guest carries on where it was."""
    vmid = HA_VMS[0]
    home = host_of(lab, vmid)
    [(host, pid)] = lab_qemus(lab.root)[vmid]
    assert host == home
    before = max(heartbeats(lab.corral("vm", "console", str(vmid)).stdout), default=0)
    with Invariants(lab, set(HA_VMS)) as inv:
        os.kill(pid, signal.SIGSTOP)
        try:
            # Well past a restart, a failed restart and a relocation with a start.
            time.sleep(PROCESS_BOUND + 10)
            copies = lab_qemus(lab.root, launching=True).get(vmid, [])
            assert copies == [(home, pid)], f"VM {vmid}: {copies}"
            row = ha_vms(lab)[vmid]
            # `ha status` says why HA waits.
            assert row["node"] == home and "state unknown" in str(row["reason"]), row
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: ha_vms(lab)[vmid]["status"] == "started"
                   and not ha_vms(lab)[vmid]["reason"], 40, f"VM {vmid} started again")

        def beats_on() -> bool:
            out = heartbeats(lab.corral("vm", "console", str(vmid)).stdout)
            return bool(out) and max(out) > before + 2
        wait_until(beats_on, 60, f"VM {vmid}'s heartbeat carrying on")
        assert lab_qemus(lab.root).get(vmid) == [(home, pid)]
    inv.check()
    vmids_kept(lab)


def test_source_lost_mid_migration_the_vm_recovered_onto_the_target_boots_afresh(lab: Lab
                                                                               ) -> None:
    """The source host is lost while its HA VM migrates (its agent freezes as the target's
    incoming QEMU comes up) and HA recovers the VM onto that very target. The incoming QEMU
    never got the go: it must not pass for the VM (paused, yet `started` to HA). The VM boots
    afresh there, and one copy of it is left."""
    vmid = HA_VMS[1]
    source = host_of(lab, vmid)
    target = next(n for n in sorted(online(lab)) if n != source)
    lay = LabLayout.load(lab.root)
    assert lay is not None
    # Recovery goes to the target, where the incoming QEMU waits, not to the third host.
    lab.corral("ha", "rule", "add", "mid-migration", "--nodes", f"{target}:2", "--vms",
               str(vmid), "--no-failback")
    before = fenced_lines(lab)
    try:
        lab.corral("vm", "migrate", str(vmid), target, "--no-wait")
        deadline = time.monotonic() + 30
        # Polled tightly: the agent must freeze before the switchover, a second or so later.
        while target not in {h for h, _ in lab_qemus(lab.root, launching=True).get(vmid, [])}:
            assert time.monotonic() < deadline, f"no incoming QEMU of VM {vmid} on {target}"
            time.sleep(0.02)
        t0 = time.monotonic()
        faults.freeze_agent(lay, source)
        try:
            home, _ = recovered(lab, vmid, source, t0)
        finally:
            faults.thaw_agent(lay, source)
        assert home == target
        beats = heartbeats(lab.corral("vm", "console", str(vmid)).stdout)
        assert beats[0] == 1, f"VM {vmid} did not boot afresh on {target}: {beats[:5]}"
        wait_until(lambda: online(lab)[source], 30, f"{source} back online")
        time.sleep(SETTLE)
        assert [h for h, _ in lab_qemus(lab.root).get(vmid, [])] == [target]
        assert ha_vms(lab)[vmid]["status"] == "started"
        assert lab.json("vm", "show", str(vmid))["status"] == "running"
    finally:
        lab.corral("ha", "rule", "remove", "mid-migration")
    others_not_fenced(lab, before, source)
    vmids_kept(lab)


# --- clean host shutdown ---------------------------------------------------------------------


@pytest.fixture
def policy(lab: Lab) -> Iterator[Callable[[str], None]]:
    """Sets the cluster's shutdown policy for one test; back to the default after it."""
    def set_policy(p: str) -> None:
        lab.corral("ha", "config", "--shutdown-policy", p)

    yield set_policy
    lab.corral("ha", "config", "--shutdown-policy", "conditional")


def only_on(lab: Lab, vmid: int, hosts: set[str], seen: list[str]) -> None:
    """Record any QEMU of vmid outside hosts."""
    for host, pid in lab_qemus(lab.root, launching=True).get(vmid, []):
        if host not in hosts:
            seen.append(f"VM {vmid} ran on {host} (pid {pid})")


def test_clean_poweroff_fails_over_at_once_and_the_host_brings_no_second_copy(
        lab: Lab, policy: Callable[[str], None]) -> None:
    policy("failover")
    vmid = HA_VMS[0]
    victim = lab.json("vm", "show", str(PLAIN_VM))["node"]
    if host_of(lab, vmid) != victim:  # earlier tests moved it: beside the plain VM again
        lab.corral("vm", "migrate", str(vmid), victim)
        wait_until(lambda: settled(lab) and host_of(lab, vmid) == victim, 60,
                   f"VM {vmid} on {victim}")
    if lab.json("vm", "show", str(PLAIN_VM))["status"] != "running":  # an earlier fence
        lab.corral("vm", "start", str(PLAIN_VM))
    # Booted, so it hears the power button: a guest still booting misses it, and its host
    # then waits out the whole guest shutdown timeout (60 s) before it goes down.
    wait_until(lambda: heartbeats(lab.corral("vm", "console", str(PLAIN_VM)).stdout), 40,
               f"VM {PLAIN_VM}'s heartbeat")
    before = fenced_lines(lab)
    with Invariants(lab, {*HA_VMS, PLAIN_VM}) as inv:
        t0 = time.monotonic()
        # The command returns once the host is off; the HA VM is watched meanwhile.
        done: list[str] = []
        shutdown = threading.Thread(target=lambda: done.append(
            lab.corral("lab", "shutdown-node", victim).stdout))
        shutdown.start()
        try:
            home, took = recovered(lab, vmid, victim, t0)
            shutdown.join(150)
            assert done, "lab shutdown-node did not return"
            print(done[0].strip())
            nodes = {n["node"]: n for n in lab.json("ha", "status")["nodes"]}
            assert nodes[victim]["status"] == "fenced", nodes[victim]
            assert "shut down cleanly" in nodes[victim]["reason"]
            # Not a lost host: nobody waited for its watchdog, which never fired.
            assert fenced_lines(lab).get(victim, 0) == before.get(victim, 0)
            # The VM without HA stays placed on its host, stopped, for the host's return.
            plain = lab.json("vm", "show", str(PLAIN_VM))
            assert plain["node"] == victim and PLAIN_VM not in lab_qemus(lab.root)
        finally:
            lab.corral("lab", "start-node", victim)
        wait_until(lambda: online(lab)[victim], 40, f"{victim} back online")
        wait_until(lambda: PLAIN_VM in lab_qemus(lab.root), 40,
                   f"VM {PLAIN_VM} started on {victim}'s return")
        no_second_copy(lab, vmid, home, victim)
    inv.check()
    vmids_kept(lab)
    print(f"clean power-off: VM {vmid} beating on {home} {took:.1f}s after the shutdown "
          f"began; no QEMU for {inv.longest_down[vmid]:.1f}s")


def test_reboot_freezes_the_vms_until_their_host_is_back(lab: Lab) -> None:
    vmid = HA_VMS[1]
    victim = host_of(lab, vmid)
    elsewhere: list[str] = []
    with Invariants(lab, set(HA_VMS)) as inv:
        lab.corral("lab", "shutdown-node", victim, "--reboot", "--back", "3")
        only_on(lab, vmid, {victim}, elsewhere)

        def back_home() -> bool:
            only_on(lab, vmid, {victim}, elsewhere)
            return ([h for h, _ in lab_qemus(lab.root).get(vmid, [])] == [victim]
                    and ha_vms(lab)[vmid]["status"] == "started")
        wait_until(back_home, 60, f"VM {vmid} running on {victim} again")
        time.sleep(SETTLE)
        only_on(lab, vmid, {victim}, elsewhere)
    inv.check()
    assert not elsewhere, elsewhere
    assert host_of(lab, vmid) == victim


def test_migrate_policy_moves_the_vms_live_and_brings_them_back(
        lab: Lab, policy: Callable[[str], None]) -> None:
    """A live migration has a QEMU at each end for a moment (the source paused), so the
    guest's own count shows what happened: it never boots again, there or back."""
    policy("migrate")
    vmid = HA_VMS[0]
    victim = host_of(lab, vmid)

    def beats() -> list[int]:
        return heartbeats(lab.corral("vm", "console", str(vmid)).stdout)

    before = max(beats(), default=0)
    lab.corral("lab", "shutdown-node", victim)
    try:
        away = host_of(lab, vmid)
        assert away != victim
        moved = beats()
        assert moved and min(moved) > 1 and max(moved) >= before, moved
        node = {n["name"]: n for n in lab.json("node", "list")}[victim]
        assert not node["online"]
    finally:
        lab.corral("lab", "start-node", victim)
    # Its return ends the maintenance the shutdown asked for: the VM comes home, live.
    wait_until(lambda: host_of(lab, vmid) == victim and ha_vms(lab)[vmid]["status"]
               == "started", 90, f"VM {vmid} back on {victim}")
    home = wait_until(beats, 30, f"VM {vmid}'s heartbeat on {victim}")
    assert min(home) > max(moved) - 5, (moved, home)
    maint = lab.json("node", "maintenance", "status", victim)
    assert not maint["enabled"], maint
    assert [h for h, _ in lab_qemus(lab.root)[vmid]] == [victim]
