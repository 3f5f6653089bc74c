"""HA soak: a lab cluster under steady, harmless-looking stress must never fence, kill or
double-run a healthy VM.

    .venv/bin/python bench/soak.py [--minutes 10] [--lease-ttl 6 --watchdog-timeout 4]

For --minutes, on a 3-host lab in network namespaces with --vms HA VMs (the tiny guest, TCG):

- the etcd leader is killed every --kill-every seconds (found through etcd's status; the lab
  supervisor restarts the member);
- every CPU of the machine is kept busy (one bounded busy loop per core);
- every --freeze-every seconds one agent is frozen (SIGSTOP) for --freeze-seconds, then
  thawed, rotating over the hosts; by default the freeze starts right after a leader kill, the
  worst case.

Every second it checks, and at the end prints: false fences (a lab watchdog's FENCED line, a
QEMU pid that changed or vanished), VMs killed or restarted (the guest's heartbeat counter going
back, or no heartbeat for longer than --gap), double runs (one VM with a live QEMU on two
hosts), lease losses the manager saw (a host not online, an HA VM not started), and the etcd
leader changes. Exit status 1 when any false fence, kill, restart or double run happened.

Starts its own lab (as root) in a temporary directory and destroys it at the end, also on
failure or Ctrl-C; the busy loops and a frozen agent never outlive the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from corral.fencing.labdog import host_qemu_pids
from corral.lab import faults
from corral.lab.layout import LabLayout, spare_base_port

SAMPLE_EVERY = 1.0
API_EVERY = 2.0
SETTLE = 120.0  # bound on the lab's start: every HA VM running and beating
QUIET_END = 10.0  # after the last fault: still checked, so a late fence is counted
BURN = ("import sys, time\n"
        "end = time.monotonic() + float(sys.argv[1])\n"
        "while time.monotonic() < end:\n"
        "    pass\n")
HEARTBEAT = re.compile(rb"corral-heartbeat (\d+)")
STALL = re.compile(r"^(\S+ \S+) .*lease renewed ([\d.]+)s after the previous renewal")
RENEW_FAILED = re.compile(r"^(\S+ \S+) .*lease renewal failed: (.*)$")


class Interrupted(Exception):
    pass


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _die_with_parent() -> None:
    # In the busy loop between fork and exec: it dies with the bench, whatever kills it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Burners:
    """One busy loop per CPU, each ending on its own after `seconds` at the latest."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, seconds: float) -> int:
        for _ in range(os.cpu_count() or 1):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", BURN, f"{seconds:.0f}"], stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent))
        return len(self.procs)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        self.procs.clear()


def _argv(pid: str) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "X"


def lab_qemus(root: Path) -> dict[int, set[str]]:
    """vmid -> hosts with a live QEMU of it, from /proc (a copy whose pidfile was overwritten
    or removed still counts); a QEMU still launching its daemon counts too."""
    runs = re.compile(re.escape(str(root / "nodes")) + r"/(n\d+)/run/(\d+)\.pid$")
    found: dict[int, set[str]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        argv = _argv(pid)
        if b"-pidfile" not in argv:
            continue
        i = argv.index(b"-pidfile")
        m = runs.match(argv[i + 1].decode(errors="replace")) if i + 1 < len(argv) else None
        if m is not None and _state(pid) not in ("Z", "X"):
            found.setdefault(int(m.group(2)), set()).add(m.group(1))
    return found


@dataclass
class VMWatch:
    """One HA VM: where it runs, its QEMU pid and its guest's heartbeat."""

    vmid: int
    host: str
    pid: int
    log: Path
    offset: int = 0
    beat: int = 0  # last heartbeat counter seen
    beat_at: float = 0.0  # monotonic time it was seen
    max_gap: float = 0.0
    in_gap: bool = False


@dataclass
class Soak:
    root: Path
    layout: LabLayout
    http: httpx.Client
    gap: float
    t0: float = field(default_factory=time.monotonic)
    vms: dict[int, VMWatch] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    events: list[str] = field(default_factory=list)
    fenced_lines: dict[str, int] = field(default_factory=dict)
    doubled: set[int] = field(default_factory=set)
    online: dict[str, bool] = field(default_factory=dict)
    ha_nodes: dict[str, str] = field(default_factory=dict)
    ha_vms: dict[int, str] = field(default_factory=dict)
    leader: tuple[str, int] | None = None  # the leading host and the raft term
    kill_at: float | None = None  # monotonic time of the last leader kill awaiting a new one
    elections: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    longest_period: float = 0.0  # of the local checks: a stall of the bench itself

    def say(self, kind: str | None, text: str) -> None:
        with self.lock:
            line = f"[{time.monotonic() - self.t0:6.1f}s] {text}"
            if kind is not None:
                self.counts[kind] += 1
                self.events.append(line)
            print(line, flush=True)

    def get(self, path: str) -> Any:
        reply = self.http.get(path)
        reply.raise_for_status()
        return reply.json()

    # --- the checks, once a second -------------------------------------------------------

    def watch(self, vmids: list[int]) -> None:
        """Take the running VMs as they are now as the reference."""
        for vmid in vmids:
            host = self.get(f"/vms/{vmid}")["node"]
            pid = self.pids(host).get(vmid)
            if pid is None:
                raise SystemExit(f"VM {vmid} has no QEMU on {host}")
            w = VMWatch(vmid, host, pid, self.run_dir(host) / f"{vmid}.serial.log")
            self.read_beats(w)
            w.beat_at = time.monotonic()
            self.vms[vmid] = w
        for path in self.layout.logs_dir.glob("n*-watchdog.log"):
            self.fenced_lines[path.name] = path.read_text(errors="replace").count("FENCED")
        self.leader = faults.etcd_leader(self.layout)

    def run_dir(self, host: str) -> Path:
        return self.layout.run_dir(self.layout.node_index(host))

    def pids(self, host: str) -> dict[int, int]:
        return host_qemu_pids(self.run_dir(host))

    def read_beats(self, w: VMWatch) -> list[int]:
        try:
            size = w.log.stat().st_size
            if size < w.offset:  # the log is emptied when a QEMU starts: a new boot
                self.say("restarts", f"VM {w.vmid}: serial log on {w.host} restarted")
                w.offset = w.beat = 0
            with open(w.log, "rb") as f:
                f.seek(w.offset)
                data = f.read()
        except OSError:
            return []
        # Only whole lines: the guest may be half-way through one.
        data = data[: data.rfind(b"\n") + 1]
        w.offset += len(data)
        return [int(n) for n in HEARTBEAT.findall(data)]

    def check_vm(self, w: VMWatch, now: float) -> None:
        pid = self.pids(w.host).get(w.vmid)
        if pid != w.pid:
            where = {h: p for h in self.layout.node_names
                     if (p := self.pids(h).get(w.vmid)) is not None}
            self.say("pid_changes", f"VM {w.vmid}: QEMU pid {w.pid} on {w.host} "
                     f"{'gone' if pid is None else f'replaced by {pid}'}; now {where or 'nowhere'}")
            if where:  # follow it, so one event is counted once
                w.host, w.pid = next(iter(where.items()))
                w.log, w.offset, w.beat = self.run_dir(w.host) / f"{w.vmid}.serial.log", 0, 0
            else:
                w.pid = 0
        beats = self.read_beats(w)
        for n in beats:
            if n <= w.beat:
                self.say("restarts", f"VM {w.vmid}: heartbeat went back from {w.beat} to {n}")
            w.beat = n
        if beats:
            w.max_gap = max(w.max_gap, now - w.beat_at)
            w.beat_at, w.in_gap = now, False
        elif now - w.beat_at > self.gap and not w.in_gap:
            w.in_gap = True
            self.say("gaps", f"VM {w.vmid}: no heartbeat for {now - w.beat_at:.1f}s "
                     f"(last {w.beat})")
        if w.in_gap:
            w.max_gap = max(w.max_gap, now - w.beat_at)

    def check_fences(self) -> None:
        for path in self.layout.logs_dir.glob("n*-watchdog.log"):
            lines = [x for x in path.read_text(errors="replace").splitlines() if "FENCED" in x]
            for line in lines[self.fenced_lines.get(path.name, 0):]:
                self.say("false_fences", f"{path.stem}: {line}")
            self.fenced_lines[path.name] = len(lines)

    def check_double_runs(self) -> None:
        copies = lab_qemus(self.layout.root)
        for vmid, hosts in sorted(copies.items()):
            if len(hosts) > 1 and vmid not in self.doubled:
                self.say("double_runs", f"VM {vmid} runs on {sorted(hosts)} at once")
        self.doubled = {v for v, hosts in copies.items() if len(hosts) > 1}

    def check_leader(self) -> None:
        """A new raft term is a new election, even when the same host wins it again."""
        leader = faults.etcd_leader(self.layout)
        now = time.monotonic()
        if leader is None or (self.leader is not None and leader[1] <= self.leader[1]):
            return
        took = f", {now - self.kill_at:.1f}s after the kill" if self.kill_at is not None else ""
        was = f"{self.leader[0]} (term {self.leader[1]})" if self.leader else "?"
        self.say("leader_changes", f"etcd leader {was} -> {leader[0]} (term {leader[1]}){took}")
        if self.kill_at is not None:
            self.elections.append(now - self.kill_at)
            self.kill_at = None
        self.leader = leader

    def check_api(self) -> None:
        try:
            nodes = self.get("/nodes")
            ha = self.get("/ha/status")
        except (httpx.HTTPError, ValueError) as e:
            self.say("api_errors", f"API: {type(e).__name__}: {e}")
            return
        for n in nodes:
            was = self.online.get(n["name"], True)
            if was and not n["online"]:
                self.say("lease_losses", f"{n['name']} offline (its lease is gone)")
            elif not was and n["online"]:
                self.say(None, f"{n['name']} online again")
            self.online[n["name"]] = bool(n["online"])
        for row in ha["nodes"]:
            before = self.ha_nodes.get(row["node"], "online")
            if row["status"] != before:
                self.say("ha_node_changes" if before == "online" else None,
                         f"HA: host {row['node']} {before} -> {row['status']} {row['reason']}")
            self.ha_nodes[row["node"]] = str(row["status"])
        for row in ha["vms"]:
            before = self.ha_vms.get(row["vmid"], "started")
            if row["status"] != before:
                self.say("ha_vm_changes" if before == "started" else None,
                         f"HA: VM {row['vmid']} {before} -> {row['status']} {row['reason']}")
            self.ha_vms[row["vmid"]] = str(row["status"])

    def local_checks(self, stop: threading.Event, until: float) -> None:
        """On a thread of its own, every SAMPLE_EVERY until stopped: what the host shows
        (processes, serial logs, watchdog logs), never held up by a slow API or etcd."""
        last = time.monotonic()
        while not stop.is_set() and (now := time.monotonic()) < until:
            self.longest_period = max(self.longest_period, now - last)
            last = now
            self.check_double_runs()
            for w in self.vms.values():
                self.check_vm(w, time.monotonic())
            self.check_fences()
            stop.wait(SAMPLE_EVERY)

    # --- the faults ------------------------------------------------------------------------

    def kill_leader(self) -> bool:
        try:
            node, pid = faults.kill_etcd_leader(self.layout)
        except (faults.FaultError, ProcessLookupError) as e:
            self.say(None, f"no leader to kill yet: {e}")
            return False
        self.kill_at = time.monotonic()
        self.say("leader_kills", f"killed the etcd leader {node}-etcd (pid {pid})")
        return True


class Freezer:
    """SIGSTOP an agent now and SIGCONT it after `seconds` on a timer thread, so that a slow
    sample never stretches a freeze."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frozen: int | None = None
        self.timer: threading.Timer | None = None
        self.stopped_at = 0.0
        self.lengths: list[float] = []

    def freeze(self, pid: int, seconds: float) -> None:
        with self.lock:
            self.thaw_now()
            os.kill(pid, signal.SIGSTOP)
            self.frozen, self.stopped_at = pid, time.monotonic()
            self.timer = threading.Timer(seconds, self.thaw)
            self.timer.daemon = True
            self.timer.start()

    def thaw(self) -> None:
        with self.lock:
            self.thaw_now()

    def thaw_now(self) -> None:
        if self.frozen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.frozen, signal.SIGCONT)
            self.lengths.append(time.monotonic() - self.stopped_at)
            self.frozen = None

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.thaw()


def corral(env: dict[str, str], *args: str, timeout: float = 240) -> str:
    proc = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"corral {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def wait_settled(s: Soak, vmids: list[int]) -> None:
    """Every host online, every HA VM started and its guest beating."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError, KeyError, StopIteration):
            nodes_ok = all(n["online"] for n in s.get("/nodes"))
            rows = {r["vmid"]: r for r in s.get("/ha/status")["vms"]}
            if nodes_ok and all(rows[v]["status"] == "started" and (
                    b"corral-heartbeat 3" in (s.run_dir(rows[v]["node"])
                                              / f"{v}.serial.log").read_bytes())
                    for v in vmids):
                return
        time.sleep(0.5)
    raise SystemExit(f"the lab did not settle within {SETTLE:.0f}s")


def agent_log_figures(layout: LabLayout, since: str) -> dict[str, tuple[int, float, str]]:
    """host -> (renewal failures, longest renewal stall logged, first failure) after `since`
    (a log timestamp)."""
    out: dict[str, tuple[int, float, str]] = {}
    for host in layout.node_names:
        failures, stall, first = 0, 0.0, ""
        with contextlib.suppress(OSError):
            for line in layout.log_path(f"{host}-agent").read_text(errors="replace").splitlines():
                if (m := RENEW_FAILED.match(line)) and m.group(1) >= since:
                    failures += 1
                    first = first or f"{m.group(1)} {m.group(2)}"
                elif (m2 := STALL.match(line)) and m2.group(1) >= since:
                    stall = max(stall, float(m2.group(2)))
        out[host] = (failures, stall, first)
    return out


def summary(s: Soak, args: argparse.Namespace, burners: int, freezer: Freezer,
            started: str) -> int:
    c = s.counts
    bad = ["false_fences", "pid_changes", "restarts", "gaps", "double_runs"]
    rows = [
        ("false fences (watchdog FENCED lines)", c["false_fences"]),
        ("QEMU pid changed or vanished", c["pid_changes"]),
        ("VM restarted (heartbeat went back)", c["restarts"]),
        (f"VM stalled (no heartbeat for > {args.gap:g}s)", c["gaps"]),
        ("double runs (one VM on two hosts)", c["double_runs"]),
        ("lease losses (host offline in the API)", c["lease_losses"]),
        ("HA host left online", c["ha_node_changes"]),
        ("HA VM left started", c["ha_vm_changes"]),
        ("etcd leaders killed", c["leader_kills"]),
        ("etcd leader changes seen", c["leader_changes"]),
        ("agent freezes", len(freezer.lengths)),
        ("API errors (timeouts under load)", c["api_errors"]),
    ]
    print()
    print(f"soak: {args.minutes:g} min, lab lease TTL {s.layout.lease_ttl}s, watchdog "
          f"{s.layout.watchdog_timeout:g}s, {len(s.vms)} HA VMs, {burners} busy loops, leader "
          f"killed every {args.kill_every:g}s, an agent frozen {args.freeze_seconds:g}s every "
          f"{args.freeze_every:g}s")
    width = max(len(r[0]) for r in rows)
    for name, count in rows:
        print(f"  {name:<{width}}  {count:>5}")
    if s.elections:
        print(f"  {'leader election (kill -> new leader seen)':<{width}}  "
              f"median {sorted(s.elections)[len(s.elections) // 2]:.1f}s, "
              f"max {max(s.elections):.1f}s")
    if freezer.lengths:
        print(f"  {'freeze length':<{width}}  max {max(freezer.lengths):.2f}s")
    gaps = ", ".join(f"{w.vmid}: {w.max_gap:.1f}s" for w in s.vms.values())
    print(f"  {'longest heartbeat gap per VM':<{width}}  {gaps} (the bench's own checks: "
          f"{s.longest_period:.1f}s at most apart)")
    for host, (failures, stall, first) in agent_log_figures(s.layout, started).items():
        print(f"  {f'{host} agent: renewal failures, longest stall':<{width}}  {failures:>5}, "
              f"{stall:.1f}s" + (f" (first: {first[:90]})" if first else ""))
    failed = sum(c[k] for k in bad)
    print(f"result: {'FAILED' if failed else 'ok'} "
          f"({failed} false fences, kills, restarts, stalls or double runs)")
    return 1 if failed else 0


def faults_on_schedule(s: Soak, args: argparse.Namespace, freezer: Freezer, end: float,
                       stop: threading.Event) -> None:
    """On a thread of its own, so that a slow API never delays a fault: the leader kills and
    freezes on their schedule until `end`, and the etcd leader watched until `stop` (every
    0.1 s while an election is on, to time it)."""
    next_kill = s.t0 + args.kill_every
    next_freeze = s.t0 + args.freeze_every + args.freeze_offset
    next_leader = s.t0
    hosts = s.layout.node_names
    frozen = 0
    while not stop.is_set() and (now := time.monotonic()) < end + QUIET_END:
        if now < end and now >= next_kill:
            # On a fixed grid, so that every freeze meets a kill as planned.
            next_kill = next_kill + args.kill_every if s.kill_leader() else now + 1.0
        if now < end and now >= next_freeze:
            host = hosts[frozen % len(hosts)]
            try:
                pid = faults.agent_pid(s.layout, host)
                freezer.freeze(pid, args.freeze_seconds)
                s.say(None, f"froze the agent of {host} (pid {pid}) for "
                      f"{args.freeze_seconds:g}s")
                frozen += 1
                next_freeze += args.freeze_every
            except (faults.FaultError, ProcessLookupError) as e:
                s.say(None, f"could not freeze {host}'s agent: {e}")
                next_freeze = now + 1.0
        if now >= next_leader or s.kill_at is not None:
            s.check_leader()
            next_leader = now + SAMPLE_EVERY
        wake = min([next_leader, *((next_kill, next_freeze) if now < end else ())])
        stop.wait(min(max(wake - time.monotonic(), 0.01), 0.1 if s.kill_at else 0.5))


def check_api_until(s: Soak, until: float) -> None:
    while time.monotonic() < until:
        s.check_api()
        time.sleep(max(API_EVERY - (time.monotonic() % API_EVERY), 0.1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--vms", type=int, default=3, help="HA VMs, one per host round-robin")
    p.add_argument("--lease-ttl", type=int, help="[default: the lab's]")
    p.add_argument("--watchdog-timeout", type=float, help="[default: the lab's]")
    p.add_argument("--kill-every", type=float, default=30.0)
    p.add_argument("--freeze-every", type=float, default=60.0)
    p.add_argument("--freeze-seconds", type=float, default=2.0)
    p.add_argument("--freeze-offset", type=float, default=0.0,
                   help="seconds after a leader kill that a freeze starts")
    p.add_argument("--gap", type=float, default=5.0, help="heartbeat gap that counts as a stall")
    p.add_argument("--no-burn", action="store_true", help="leave the CPUs alone")
    p.add_argument("--logs", type=Path, help="keep the lab's logs here [default: only when "
                   "the soak fails, in /tmp/soak-logs-*]")
    p.add_argument("--images", default=os.environ.get("CORRAL_IMAGES_DIR",
                                                      "/var/lib/corral/images"))
    args = p.parse_args()
    if os.geteuid() != 0:
        p.error("the lab's network namespaces need root")
    if args.minutes <= 0 or args.vms < 1 or min(args.kill_every, args.freeze_every) <= 0:
        p.error("need --minutes > 0, --vms >= 1, --kill-every and --freeze-every > 0")

    signal.signal(signal.SIGTERM, _on_term)
    root = Path(tempfile.mkdtemp(prefix="soak-", dir="/tmp"))
    env = {**os.environ, "CORRAL_CONFIG": str(root / "client.json"),
           "CORRAL_LAB_DIR": str(root / "lab"), "CORRAL_IMAGES_DIR": args.images}
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    burners, freezer = Burners(), Freezer()
    http: httpx.Client | None = None
    code = 2
    try:
        base = spare_base_port()
        timing = []
        if args.lease_ttl is not None:
            timing += ["--lease-ttl", str(args.lease_ttl)]
        if args.watchdog_timeout is not None:
            timing += ["--watchdog-timeout", f"{args.watchdog_timeout:g}"]
        print(f"lab in {root}: 3 hosts (netns, TCG), {args.vms} HA VMs", flush=True)
        corral(env, "lab", "up", "--nodes", "3", "--vms", str(args.vms), "--accel", "tcg",
               "--netns", *timing, "--base-port", str(base), "--api-port", str(base + 390))
        layout = LabLayout.load(root / "lab")
        assert layout is not None
        cfg = json.loads((root / "client.json").read_text())
        http = httpx.Client(base_url=cfg["url"].rstrip("/") + "/api/v1", timeout=3.0,
                            headers={"Authorization": f"Bearer {cfg['token']}"})
        s = Soak(root, layout, http, args.gap)
        vmids = sorted(vm["vmid"] for vm in s.get("/vms"))
        for vmid in vmids:
            corral(env, "ha", "add", str(vmid))
        wait_settled(s, vmids)
        s.watch(vmids)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        seconds = args.minutes * 60
        n_burn = 0 if args.no_burn else burners.start(seconds + QUIET_END + 30)
        s.t0 = time.monotonic()
        lead = s.leader[0] if s.leader else "?"
        s.say(None, f"soak started: lease TTL {layout.lease_ttl}s, watchdog "
              f"{layout.watchdog_timeout:g}s, {n_burn} busy loops, etcd leader {lead}")
        end = s.t0 + seconds
        stop = threading.Event()
        threads = [
            threading.Thread(target=s.local_checks, args=(stop, end + QUIET_END + 5),
                             name="local-checks", daemon=True),
            threading.Thread(target=faults_on_schedule, args=(s, args, freezer, end, stop),
                             name="faults", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            check_api_until(s, end + QUIET_END)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        freezer.close()
        burners.stop()
        code = summary(s, args, n_burn, freezer, started)
    except (KeyboardInterrupt, Interrupted) as e:
        print(f"\ninterrupted ({e or 'Ctrl-C'}): cleaning up", flush=True)
        code = 130
    finally:
        freezer.close()
        burners.stop()
        if http is not None:
            http.close()
        keep = args.logs or (Path(tempfile.mkdtemp(prefix="soak-logs-", dir="/tmp"))
                             if code != 0 else None)
        if keep is not None and (root / "lab" / "logs").is_dir():
            shutil.copytree(root / "lab" / "logs", keep, dirs_exist_ok=True)
            print(f"lab logs kept in {keep}", flush=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run([sys.executable, "-m", "corral.cli.main", "lab", "destroy", "-y"],
                           env=env, capture_output=True, timeout=180, check=False)
        shutil.rmtree(root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
