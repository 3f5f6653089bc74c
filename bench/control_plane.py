"""The control plane under load: a 3-member etcd, the API, one manager, simulated hosts and
thousands of stopped VMs; latency of the main reads and writes under open-loop load, the
manager's cost, what etcd is asked in each window (bench/etcd_requests.py), etcd's size and
each process's memory.

    python bench/control_plane.py [--hosts 64 --vms 5000] [--baseline-hosts 3
        --baseline-vms 30] [--rates 50,200,500] [--duration 10] [--repeat 1] [--idle 20]
        [--quick]

Runs the small cluster first (the baseline) and then the large one, each from scratch, every
process on loopback in a temporary directory, all stopped and removed at the end (also on
Ctrl-C or an error). Everything is measured from outside: through the public HTTP API and
the processes' OS figures (psutil). No real agent runs: the hosts are SimulatedHosts
(bench/simulated_hosts.py), which hold leases, publish usage and finish the tasks addressed
to them without a guest, so no QEMU ever starts.

Goals on the bench machine: p99 under 50 ms at 200 req/s with 5,000 VMs; the manager under
10 % of one core at idle; above capacity, the excess refused (503) in under 10 ms while the
admitted requests keep their latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import etcd_requests  # bench/, beside this script
import httpx
import psutil
from simulated_hosts import host_names  # bench/, beside this script

from corral.cluster.models import Placement, RunState, VMConfig, VMRuntime, VMStatus
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

LOAD_CONNECTIONS = 256

BENCH = Path(__file__).resolve().parent
TABLE_SIZES = (0, 300, 1000, 5000)  # VM counts of the sequential-read table
SEQUENTIAL = 20  # requests per route in the table (their median is printed)
CREATE_CONCURRENCY = 16
CREATE_RETRIES = 5  # per VM, after a 503 with Retry-After
START_TIMEOUT = 60.0
SETTLE_TIMEOUT = 120.0  # tasks finished and pruned after the VMs were created
SETTLED_TASKS = 600  # the manager keeps up to 500 finished tasks; more are a backlog
GOAL_P99_MS = 50.0
GOAL_MANAGER_IDLE = 10.0  # % of one core
GOAL_REFUSAL_MS = 10.0


def say(text: str = "") -> None:
    print(text, flush=True)


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- figures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}"


def p50_p99(values: Sequence[float]) -> str:
    if not values:
        return "n/a / n/a"
    return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.99))}"


# --- processes -------------------------------------------------------------------------------


class Processes:
    """The bench's children: started in sessions of their own (a Ctrl-C reaches only the
    bench, which stops them in order) and all stopped by `stop_all`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.popen: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[TextIO] = []

    def start(self, name: str, cmd: list[str]) -> psutil.Process:
        log = (self.log_dir / f"{name}.log").open("w")
        self._logs.append(log)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.popen[name] = proc
        return psutil.Process(proc.pid)

    def check_alive(self) -> None:
        for name, proc in self.popen.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"{name} exited ({proc.returncode}):\n{tail}")

    def stop_all(self) -> None:
        for proc in reversed(self.popen.values()):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.popen.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self._logs:
            log.close()


def python_cmd(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH / script), *args]


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def runqueue_wait_seconds(proc: psutil.Process) -> float:
    """Time the process's threads spent runnable but waiting for a core, so far (Linux
    schedstat; 0 where the kernel does not keep it)."""
    total = 0
    try:
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    except OSError:
        return 0.0
    return total / 1e9


OUTSIDE = "outside the bench"


class CpuWindow:
    """CPU time of each process over a stretch of wall time, as % of one core; and what
    processes outside the bench took meanwhile (a shared machine skews every figure)."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.start = time.monotonic()
        self.cpu = {n: cpu_seconds(p) for n, p in procs.items()}
        self.waits = {n: runqueue_wait_seconds(p) for n, p in procs.items()}
        self.machine = machine_busy_seconds()

    def shares(self, other_bench_seconds: float = 0.0) -> dict[str, float]:
        """other_bench_seconds: CPU of the bench's own short-lived helpers (the generator)."""
        wall = time.monotonic() - self.start
        used = {n: cpu_seconds(p) - self.cpu[n] for n, p in self.procs.items()}
        outside = (machine_busy_seconds() - self.machine - sum(used.values())
                   - other_bench_seconds)
        return {**{n: 100 * v / wall for n, v in used.items()},
                OUTSIDE: max(0.0, 100 * outside / wall)}

    def waits_for_a_core(self) -> dict[str, float]:
        """How long each process's threads were ready to run but had no core, as % of the
        wall time (summed over threads): on a full machine, where latency goes."""
        wall = time.monotonic() - self.start
        return {n: 100 * (runqueue_wait_seconds(p) - self.waits[n]) / wall
                for n, p in self.procs.items()}


def read_passes(path: Path, since: float, until: float) -> dict[str, list[float]]:
    """The manager's timed passes that started within [since, until] (monotonic)."""
    out: dict[str, list[float]] = {"pass": [], "decide": []}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in out and since <= float(parts[1]) <= until:
            out[parts[0]].append(float(parts[2]))
    return out


def passes_line(passes: dict[str, list[float]], wall: float) -> str:
    if not passes["pass"]:
        return "manager passes: n/a (the manager's code offers no pass to time)"
    line = (f"manager passes: {len(passes['pass'])} in {wall:.0f} s, per pass (read+decide+"
            f"apply) p50/p99/max {p50_p99(passes['pass'])} / {ms(max(passes['pass']))} ms")
    if passes["decide"]:
        line += f"; decision alone p50/p99 {p50_p99(passes['decide'])} ms"
    return line


# --- the cluster -----------------------------------------------------------------------------


@dataclass
class Cluster:
    hosts: int
    vms: int
    root: Path
    processes: Processes
    etcd: list[EtcdMember] = field(default_factory=list)
    api_url: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: dict[str, psutil.Process] = field(default_factory=dict)
    node_names: list[str] = field(default_factory=list)
    vm_ids: list[int] = field(default_factory=list)
    created_by: str = ""
    max_in_flight: int | None = None  # None: the API's default

    @property
    def etcd_urls(self) -> str:
        return ",".join(m.client_url for m in self.etcd)

    @property
    def passes_file(self) -> Path:
        return self.root / "manager-passes.txt"

    def start(self) -> None:
        members = [EtcdMember(f"e{i}", self.root / f"e{i}", free_port(), free_port())
                   for i in range(3)]
        self.etcd = members
        token = f"bench-{secrets.token_hex(4)}"
        for m in members:
            self.procs[f"etcd {m.name}"] = self.processes.start(
                f"etcd-{m.name}", m.command(members, token=token))
        wait_healthy([m.client_url for m in members], timeout=START_TIMEOUT)
        asyncio.run(self._add_token())
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.procs["API"] = self.processes.start("api", [
            sys.executable, "-m", "corral.cli.main", "api", "serve",
            "--etcd", self.etcd_urls, "--port", str(port),
            *(["--max-in-flight", str(self.max_in_flight)] if self.max_in_flight else [])])
        ready = self.root / "hosts-ready"
        self.procs["SimulatedHosts"] = self.processes.start(
            "simulated-hosts", python_cmd("simulated_hosts.py", "--etcd", self.etcd_urls,
                                          "--hosts", str(self.hosts), "--ready-file",
                                          str(ready)))
        self.procs["manager"] = self.processes.start(
            "manager", python_cmd("manager_runner.py", "--etcd", self.etcd_urls,
                                  "--passes-file", str(self.passes_file)))
        self._wait(lambda: ready.exists(), "the simulated hosts to register")
        self._wait(self._api_up, "the API")
        self.node_names = host_names(self.hosts)

    async def _add_token(self) -> None:
        async with Store([m.client_url for m in self.etcd]) as store:
            await store.add_token(self.token)

    def _api_up(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/api/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            self.processes.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {START_TIMEOUT:.0f} s for {what}")
            time.sleep(0.2)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})


# --- creating VMs ----------------------------------------------------------------------------


def vm_body(vmid: int, node: str) -> dict[str, Any]:
    return {"vmid": vmid, "name": f"vm{vmid}", "memory_mb": 64, "cores": 1, "node": node}


async def create_through_api(cluster: Cluster, vmids: list[int], budget: float
                             ) -> tuple[list[int], list[str]]:
    """Create VMs with POST /vms, CREATE_CONCURRENCY at once, until done or out of budget;
    returns the ids created and the errors seen (first few)."""
    created: list[int] = []
    errors: list[str] = []
    pending = iter(vmids)
    deadline = time.monotonic() + budget
    headers = {"Authorization": f"Bearer {cluster.token}"}
    async with httpx.AsyncClient(base_url=cluster.api_url, headers=headers,
                                 timeout=30) as client:
        async def worker() -> None:
            for vmid in pending:
                if time.monotonic() > deadline:
                    return
                node = cluster.node_names[vmid % len(cluster.node_names)]
                r = await client.post("/api/v1/vms", json=vm_body(vmid, node))
                for _ in range(CREATE_RETRIES):  # refused at once: sent again, as the CLI does
                    if r.status_code != 503 or "retry-after" not in r.headers:
                        break
                    await asyncio.sleep(float(r.headers["retry-after"]))
                    r = await client.post("/api/v1/vms", json=vm_body(vmid, node))
                if r.status_code == 202:
                    created.append(vmid)
                elif len(errors) < 5:
                    errors.append(f"VM {vmid}: {r.status_code} {r.text[:200]}")
        await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))
    return created, errors


async def create_in_store(cluster: Cluster, vmids: list[int]) -> list[int]:
    """The fallback when the API is too slow: the records a created VM has (config,
    placement, the host's stopped runtime), written straight into etcd."""
    created = []
    async with Store([m.client_url for m in cluster.etcd]) as store:
        for vmid in vmids:
            node = cluster.node_names[vmid % len(cluster.node_names)]
            config = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)
            if await store.create_vm(config, Placement(node=node, state=RunState.STOPPED)):
                await store.put_runtime(vmid, VMRuntime(node=node, status=VMStatus.STOPPED))
                created.append(vmid)
    return created


def create_vms(cluster: Cluster, count: int, budget: float) -> str:
    """Bring the cluster to `count` VMs; a line saying how."""
    first = 100 + len(cluster.vm_ids)
    vmids = list(range(first, 100 + count))
    if not vmids:
        return "no VM to create"
    start = time.monotonic()
    created, errors = asyncio.run(create_through_api(cluster, vmids, budget))
    took = time.monotonic() - start
    line = (f"{len(created)} VMs created through POST /api/v1/vms in {took:.1f} s "
            f"({len(created) / took:.0f}/s, {CREATE_CONCURRENCY} at once)")
    cluster.vm_ids += sorted(created)
    rest = [v for v in vmids if v not in set(created)]
    if rest:
        t0 = time.monotonic()
        direct = asyncio.run(create_in_store(cluster, rest))
        cluster.vm_ids += direct
        line += (f"; {len(direct)} more written straight into etcd (Store.create_vm, the API "
                 f"being over its {budget:.0f} s budget or refusing) in "
                 f"{time.monotonic() - t0:.1f} s")
    for e in errors:
        line += f"\n      refused: {e}"
    return line


def settle(cluster: Cluster) -> str:
    """Wait until the create tasks are finished and the manager has pruned them."""
    start = time.monotonic()
    unfinished = total = -1
    with cluster.client() as client:
        while time.monotonic() - start < SETTLE_TIMEOUT:
            cluster.processes.check_alive()
            try:
                tasks = client.get("/api/v1/tasks", params={"limit": 10_000}).json()
            except (httpx.HTTPError, ValueError):
                time.sleep(1)
                continue
            total = len(tasks)
            unfinished = sum(1 for t in tasks if t.get("state") in ("queued", "running"))
            if unfinished == 0 and total <= SETTLED_TASKS:
                return f"settled in {time.monotonic() - start:.1f} s ({total} finished tasks kept)"
            time.sleep(1)
    return (f"NOT settled after {SETTLE_TIMEOUT:.0f} s: {unfinished} tasks unfinished, "
            f"{total} tasks in all")


# --- measuring -------------------------------------------------------------------------------


TABLE_ROUTES = ("/vms", "/nodes", "/ha/status")


def sequential_medians(cluster: Cluster) -> dict[str, float]:
    out = {}
    with cluster.client() as client:
        for route in TABLE_ROUTES:
            times = []
            for _ in range(SEQUENTIAL):
                t0 = time.monotonic()
                client.get(f"/api/v1{route}").raise_for_status()
                times.append(time.monotonic() - t0)
            out[route] = statistics.median(times)
    return out


def etcd_sizes(cluster: Cluster) -> list[str]:
    lines = []
    for m in cluster.etcd:
        try:
            r = httpx.post(f"{m.client_url}/v3/maintenance/status", json={}, timeout=5).json()
            lines.append(f"{m.name}: dbSize {int(r.get('dbSize', 0)) / 1e6:.1f} MB, in use "
                         f"{int(r.get('dbSizeInUse', 0)) / 1e6:.1f} MB")
        except (httpx.HTTPError, ValueError) as e:
            lines.append(f"{m.name}: status unavailable ({e})")
    return lines


def rss_lines(cluster: Cluster) -> list[str]:
    return [f"{name}: {p.memory_info().rss / 2**20:.0f} MiB" for name, p in cluster.procs.items()]


@dataclass
class Idle:
    vms: int
    medians: dict[str, float]
    cpu: dict[str, float]
    passes: dict[str, list[float]]
    seconds: float


def measure_idle(cluster: Cluster, seconds: float) -> Idle:
    medians = sequential_medians(cluster)
    window = CpuWindow(cluster.procs)
    time.sleep(seconds)
    shares = window.shares()
    passes = read_passes(cluster.passes_file, window.start, time.monotonic())
    return Idle(len(cluster.vm_ids), medians, shares, passes, seconds)


def run_load(cluster: Cluster, rate: float, duration: float, write_base: int
             ) -> tuple[dict[str, Any], dict[str, float], dict[str, list[float]]]:
    window = CpuWindow(cluster.procs)
    ids = cluster.vm_ids
    cmd = python_cmd("loadgen.py", "--api", cluster.api_url, "--token", cluster.token,
                     "--rate", str(rate), "--duration", str(duration),
                     "--vmids", f"{min(ids)}-{max(ids)}" if ids else "100-100",
                     "--nodes", ",".join(cluster.node_names),
                     "--write-vmid-base", str(write_base),
                     # More than the API lets in at once, so that its refusals show.
                     "--connections", str(LOAD_CONNECTIONS))
    members = [m.client_url for m in cluster.etcd]
    etcd_before = etcd_requests.scrape(members)
    # The generator is a process of its own: its CPU is not the API's.
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120,
                         check=True)
    result = json.loads(out.stdout)
    shares = window.shares(other_bench_seconds=result["cpu_seconds"])
    result["waits"] = window.waits_for_a_core()
    result["etcd"] = etcd_requests.per_second(
        etcd_before, etcd_requests.scrape(members), time.monotonic() - window.start)
    passes = read_passes(cluster.passes_file, window.start, time.monotonic())
    return result, shares, passes


def recover(cluster: Cluster, limit: float = 90.0) -> str:
    """Wait until the API answers promptly again: requests the generator gave up on may still
    be worked off, and the next rate must not inherit them. Probed with the health check,
    which costs nothing itself: it is slow only behind a backlog."""
    start = time.monotonic()
    prompt = 0
    with cluster.client() as client:
        while prompt < 2 and time.monotonic() - start < limit:
            t0 = time.monotonic()
            try:
                client.get("/api/v1/health", timeout=5).raise_for_status()
                prompt = prompt + 1 if time.monotonic() - t0 < 1.0 else 0
            except httpx.HTTPError:
                prompt = 0
            time.sleep(0.5)
    took = time.monotonic() - start
    if prompt < 2:
        return f"the API's health check still slow {limit:.0f} s after the load"
    return f"the API's health check answered promptly again {took:.0f} s after the load"


def print_load(result: dict[str, Any], shares: dict[str, float],
               passes: dict[str, list[float]]) -> dict[str, float]:
    """Print one rate's figures; returns the figures the goals are checked against."""
    rate, sent = result["rate"], result["requests"]
    answered = sum(len(v) for by in result["latencies"].values() for v in by.values())
    say(f"  -- open loop at {rate:.0f} req/s for {result['duration']:.0f} s: {sent} sent in "
        f"{result['sent_for']:.1f} s ({sent / max(result['sent_for'], 1e-9):.0f}/s), "
        f"{answered / result['finished_after']:.0f} answers/s; generator lag p50/p99 "
        f"{p50_p99(result['send_lag'])} ms, its CPU "
        f"{100 * result['cpu_seconds'] / result['finished_after']:.0f} % of one core")
    say(f"     {'route':<22}{'n':>6}  {'2xx p50/p99 ms':>20}  {'503 n':>6}  "
        f"{'503 p50/p99 ms':>18}  other statuses")
    ok_all: list[float] = []
    refused_all: list[float] = []
    for route in sorted(result["latencies"]):
        by = result["latencies"][route]
        ok = [x for s, v in by.items() if s.startswith("2") for x in v]
        refused = by.get("503", [])
        other = {s: len(v) for s, v in by.items() if not s.startswith("2") and s != "503"}
        ok_all += ok
        refused_all += refused
        n = sum(len(v) for v in by.values())
        say(f"     {route:<22}{n:>6}  {p50_p99(ok):>20}  {len(refused):>6}  "
            f"{p50_p99(refused) if refused else '-':>18}  "
            f"{', '.join(f'{s}: {c}' for s, c in sorted(other.items())) or '-'}")
    timeouts = sum(result["timeouts"].values())
    say(f"     all admitted p50/p99 {p50_p99(ok_all)} ms; 503 {len(refused_all)}; timeouts "
        f"{timeouts} {dict(result['timeouts']) or ''}; transport errors "
        f"{dict(result['errors']) or 0}")
    from_send = result.get("refused_from_send", [])
    if from_send:
        say(f"     503 from their actual send (the generator's lag left out): p50/p99 "
            f"{p50_p99(from_send)} ms")
    say("     CPU % of one core: " + ", ".join(f"{n} {v:.0f}" for n, v in shares.items()))
    say("     waiting for a core, % of the wall time (threads summed): "
        + ", ".join(f"{n} {v:.0f}" for n, v in result["waits"].items()))
    say(f"     {result['etcd']}")
    say(f"     {passes_line(passes, result['finished_after'])}")
    return {"p99": percentile(ok_all, 0.99) if ok_all else math.inf,
            "refused": len(refused_all),
            "refused_p99": percentile(refused_all, 0.99) if refused_all else math.nan,
            "refused_p99_from_send": percentile(from_send, 0.99) if from_send else math.nan,
            "timeouts": timeouts}


# --- one cluster size ------------------------------------------------------------------------


@dataclass
class Options:
    rates: list[float]
    duration: float
    idle: float
    checkpoint_idle: float
    create_budget: float
    repeat: int = 1
    max_in_flight: int | None = None


def table_sizes(vms: int) -> list[int]:
    return [c for c in TABLE_SIZES if c < vms] + [vms]


def bench_size(hosts: int, vms: int, label: str, opts: Options) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="corral-bench-cp-"))
    processes = Processes(root)
    summary: dict[str, Any] = {"label": label, "hosts": hosts, "vms": vms, "loads": {}}
    try:
        cluster = Cluster(hosts, vms, root, processes, max_in_flight=opts.max_in_flight)
        say(f"\n== {label}: 3 etcd members, API, manager, {hosts} simulated hosts "
            f"(SimulatedHosts, one process), {vms} stopped VMs ==")
        progress(f"{label}: starting etcd, API, manager, simulated hosts in {root}")
        cluster.start()
        idles = []
        say("  -- creating VMs")
        for size in table_sizes(vms):
            progress(f"{label}: creating VMs up to {size}")
            say(f"     up to {size}: {create_vms(cluster, size, opts.create_budget)}")
            say(f"     {settle(cluster)}")
            last = size == vms
            progress(f"{label}: measuring idle at {size} VMs")
            idles.append(measure_idle(cluster, opts.idle if last else opts.checkpoint_idle))
        print_table(idles, hosts)
        final = idles[-1]
        summary["manager_idle"] = final.cpu["manager"]
        say(f"  -- idle at {final.vms} VMs over {final.seconds:.0f} s, CPU % of one core: "
            + ", ".join(f"{n} {v:.1f}" for n, v in final.cpu.items()))
        say(f"     {passes_line(final.passes, final.seconds)}")
        window = 0
        for rate in opts.rates:
            summary["loads"][rate] = []
            for _ in range(opts.repeat):
                progress(f"{label}: open loop at {rate:.0f} req/s")
                result, shares, passes = run_load(cluster, rate, opts.duration,
                                                  900_000 + 100_000 * window)
                window += 1
                summary["loads"][rate].append(print_load(result, shares, passes))
                processes.check_alive()
                say(f"     {recover(cluster)}")
        say("  -- etcd (Status API)")
        for line in etcd_sizes(cluster):
            say(f"     {line}")
        say("  -- memory (RSS)")
        for line in rss_lines(cluster):
            say(f"     {line}")
    finally:
        progress(f"{label}: stopping every process")
        processes.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return summary


def print_table(idles: list[Idle], hosts: int) -> None:
    say(f"  -- sequential reads (median of {SEQUENTIAL}, ms) and CPU at idle (% of one core)")
    say(f"     {'VMs':>6}  {'GET /vms':>9}  {'GET /nodes':>10}  {'GET /ha/status':>14}  "
        f"{'sim hosts (all)':>15}  {'per host':>8}  {'manager':>7}  {'API':>5}  "
        f"{OUTSIDE:>17}")
    for i in idles:
        sim = i.cpu["SimulatedHosts"]
        say(f"     {i.vms:>6}  {ms(i.medians['/vms']):>9}  {ms(i.medians['/nodes']):>10}  "
            f"{ms(i.medians['/ha/status']):>14}  {sim:>15.1f}  {sim / hosts:>8.2f}  "
            f"{i.cpu['manager']:>7.1f}  {i.cpu['API']:>5.1f}  {i.cpu[OUTSIDE]:>17.0f}")


def over_windows(windows: list[dict[str, float]], key: str) -> tuple[float, str]:
    """The median of a figure over a rate's windows, and each window's, for the goals: on a
    shared machine one window can be a slow hour's."""
    values = [w[key] for w in windows]
    shown = ", ".join(ms(v) if math.isfinite(v) else "none" for v in values)
    median = statistics.median(values)
    return median, (f"{ms(median)} ms" if len(values) == 1 else
                    f"{ms(median)} ms, median of {len(values)} windows ({shown})")


def print_goals(summaries: list[dict[str, Any]]) -> None:
    say("\n== goals (measured on this machine, same run) ==")
    for s in summaries:
        say(f"  {s['label']} ({s['hosts']} hosts, {s['vms']} VMs):")
        at = s["loads"].get(200.0)
        if at:
            p99, shown = over_windows(at, "p99")
            verdict = "met" if p99 < GOAL_P99_MS / 1000 else "NOT met"
            shown = shown if math.isfinite(p99) else "none answered in time"
            say(f"     p99 at 200 req/s: {shown} (goal < {GOAL_P99_MS:.0f} ms): {verdict}")
        idle = s.get("manager_idle")
        if idle is not None:
            verdict = "met" if idle < GOAL_MANAGER_IDLE else "NOT met"
            say(f"     manager at idle: {idle:.1f} % of one core (goal < "
                f"{GOAL_MANAGER_IDLE:.0f}): {verdict}")
        for rate, windows in sorted(s["loads"].items()):
            refused = sum(int(w["refused"]) for w in windows)
            timeouts = sum(int(w["timeouts"]) for w in windows)
            shedding = [w for w in windows if w["refused"]]
            if shedding:
                p99, shown = over_windows(shedding, "refused_p99")
                verdict = "met" if p99 < GOAL_REFUSAL_MS / 1000 else "NOT met"
                say(f"     refusals at {rate:.0f} req/s: {refused}, p99 {shown} "
                    f"(goal < {GOAL_REFUSAL_MS:.0f}): {verdict}")
                sent_p99, sent_shown = over_windows(shedding, "refused_p99_from_send")
                if math.isfinite(sent_p99):
                    say(f"       from their actual send, the generator's lag left out: p99 "
                        f"{sent_shown}")
            else:
                say(f"     refusals at {rate:.0f} req/s: none (no load shedding seen); "
                    f"{timeouts} timeouts")


# --- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--baseline-hosts", type=int, default=3)
    parser.add_argument("--baseline-vms", type=int, default=30)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--rates", default="50,200,500", help="req/s, comma separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--idle", type=float, default=20.0,
                        help="seconds of idle CPU measurement at the full size")
    parser.add_argument("--create-budget", type=float, default=600.0,
                        help="seconds for creating VMs through the API before the rest are "
                             "written straight into etcd")
    parser.add_argument("--repeat", type=int, default=1,
                        help="windows per rate; the goals take the median over them")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="the API's bound on requests served at once (its default if unset)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 hosts, 30 VMs, 3 s per rate, no baseline")
    args = parser.parse_args()
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        parser.error("--rates: numbers, comma separated")
    if not all(0 < r <= 5000 for r in rates):
        parser.error("--rates: each between 0 and 5000 req/s")
    if not (1 <= args.hosts <= 1000 and 0 <= args.vms <= 100_000 and 0 < args.duration <= 600):
        parser.error("--hosts 1..1000, --vms 0..100000, --duration up to 600 s")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat: 1 to 20 windows per rate")
    if args.max_in_flight is not None and not 1 <= args.max_in_flight <= 10_000:
        parser.error("--max-in-flight: 1 to 10000")
    opts = Options(rates, args.duration, args.idle, min(10.0, args.idle), args.create_budget,
                   args.repeat, args.max_in_flight)
    sizes = [("baseline", args.baseline_hosts, args.baseline_vms)] if not args.no_baseline else []
    sizes.append(("cluster", args.hosts, args.vms))
    if args.quick:
        opts = Options(rates, 3.0, 2.0, 1.0, args.create_budget, args.repeat,
                       args.max_in_flight)
        sizes = [("quick", 3, 30)]
    say(f"control-plane bench, {time.strftime('%Y-%m-%d %H:%M:%S')}, {psutil.cpu_count()} "
        f"CPUs; rates {', '.join(f'{r:g}' for r in rates)} req/s, {opts.duration:g} s each "
        f"(open loop, latency from the scheduled send time)")
    say("writes in the mix: POST /vms (stopped, on a simulated host) and DELETE /vms/{id} of "
        "a VM the run created; the simulated hosts finish their tasks without a guest")
    summaries = []
    with sigterm_as_interrupt():
        try:
            for label, hosts, vms in sizes:
                summaries.append(bench_size(hosts, vms, label, opts))
        except KeyboardInterrupt:
            say("\ninterrupted: every process stopped, temporary files removed")
            raise SystemExit(130) from None
    print_goals(summaries)


if __name__ == "__main__":
    main()
