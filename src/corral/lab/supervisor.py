"""The lab supervisor: `python -m corral.lab.supervisor <lab dir>`, started detached by
`corral lab up`.

It creates the hosts' network namespaces (netns mode), starts the etcd members, seeds the
cluster (storages, API token), starts each host's watchdog and agent and the API, and then
restarts any child that exits, with a backoff, as systemd would. A host with a power marker
(`lab kill-node`) is held down: its processes are killed and not restarted until the marker
goes (`lab start-node`); one with a shutdown marker (`lab shutdown-node`) restarts nothing
that exits meanwhile. SIGTERM stops the lab: API and agents, then watchdogs, then the
hosts' QEMU processes (agents leave them running on purpose), then etcd, then the network.
Its state is published in <lab>/supervisor.json for `lab status`.

In cluster mode (the layout's `cluster_mode`) it starts no etcd, agents or API of its own:
each host runs the services its control file (`<run>/services.json`, written by `corral
cluster create/join` through `host.services`) wants, in their order, inside the host's
namespace; the file is read again whenever it changes, the services it no longer wants are
stopped in reverse order, and what runs is reported in `<run>/services-status.json`. Power,
shutdown, restarts and the stop of the lab treat them as the children of its own plan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from corral.cluster.health import healthy
from corral.cluster.models import StorageConfig, StorageType
from corral.cluster.store import Store
from corral.fencing.labdog import host_qemu_pids
from corral.host.services import ServicesError, write_status
from corral.lab import netns, procs
from corral.lab.children import ChildSpec, Role, changes, read_wanted, wanted_children
from corral.lab.layout import LabLayout, write_json_atomic

log = logging.getLogger("corral.lab.supervisor")

__all__ = ["ChildSpec", "Role", "Supervisor", "backoff", "main", "plan_children"]

STOP_GRACE = 5.0  # SIGTERM -> SIGKILL, for API, agents and QEMU
ETCD_GRACE = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0  # a child that ran this long starts its backoff afresh
STARTUP_TIMEOUT = 60.0


def plan_children(
    layout: LabLayout,
    python: str = sys.executable,
    agents: bool = True,
    api: bool = True,
    extra: Sequence[tuple[str, Sequence[str]]] = (),
) -> list[ChildSpec]:
    """Every process of the lab in start order: etcd members, watchdogs, agents, API, then
    `extra`. In netns mode a host's processes run inside its namespace. In cluster mode the
    hosts' processes come from their control files: `extra` only."""
    env = {procs.LAB_ENV: str(layout.root)}
    if layout.cluster_mode:
        return [ChildSpec(name, tuple(cmd), layout.log_path(name), "other", env)
                for name, cmd in extra]
    cli = (python, "-m", "corral.cli.main")
    members = layout.etcd_members
    out = [
        ChildSpec(f"{m.name}-etcd", (*netns.exec_prefix(layout, i), python, "-m",
                                     "corral.host.etcd_launch", *m.command(members)),
                  layout.log_path(f"{m.name}-etcd"), "etcd", env, host=m.name)
        for i, m in enumerate(members, start=1)
    ]
    if agents and layout.watchdog_timeout:
        for i, name in enumerate(layout.node_names, start=1):
            dog = (
                *netns.exec_prefix(layout, i), python, "-m", "corral.fencing.labdog",
                "--node", name,
                "--run-dir", str(layout.run_dir(i)),
                "--socket", str(layout.watchdog_socket(i)),
                "--timeout", f"{layout.watchdog_timeout:g}",
            )
            out.append(ChildSpec(f"{name}-watchdog", dog, layout.log_path(f"{name}-watchdog"),
                                 "watchdog", env, host=name))
    if agents:
        for i, name in enumerate(layout.node_names, start=1):
            argv: tuple[str, ...] = (
                *netns.exec_prefix(layout, i), *cli, "agent", "run",
                "--node", name,
                "--data-dir", str(layout.node_dir(i)),
                "--images-dir", str(layout.images_dir),
                "--etcd", ",".join(layout.etcd_urls_for(i)),
                "--listen", f"{layout.host_address(i)}:{layout.agent_port(i)}",
                "--accel", layout.accel,
                "--lease-ttl", str(layout.lease_ttl),
            )
            if layout.watchdog_timeout:
                argv += ("--watchdog-socket", str(layout.watchdog_socket(i)),
                         "--watchdog-timeout", f"{layout.watchdog_timeout:g}")
            argv += ("--shared-machine",)  # the lab's hosts are one machine
            out.append(ChildSpec(f"{name}-agent", argv, layout.log_path(f"{name}-agent"),
                                 "agent", env, host=name))
    if api:
        api_argv = (
            *cli, "api", "serve",
            "--etcd", ",".join(layout.client_urls),
            "--host", "127.0.0.1",
            "--port", str(layout.api_port),
        )
        out.append(ChildSpec("api", api_argv, layout.log_path("api"), "api", env))
    for name, cmd in extra:
        out.append(ChildSpec(name, tuple(cmd), layout.log_path(name), "other", env))
    return out


FileKey = tuple[int, int, int]


def file_key(path: Path) -> FileKey | None:
    """What tells a new version of a file from the one read before (its writers replace it
    by a rename: a new inode), or None when there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def backoff(failures: int) -> float:
    """Delay before the next start after `failures` quick exits in a row (1-based)."""
    return float(min(BACKOFF_FIRST * 2 ** max(failures - 1, 0), BACKOFF_MAX))


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the supervisor dies hard (SIGKILL), its
    # children get SIGTERM instead of running on unsupervised.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0  # quick exits in a row
    next_start: float = 0.0  # monotonic time of the pending restart
    held: bool = False  # killed with its powered-off host: starts when the power returns

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


class Supervisor:
    def __init__(self, layout: LabLayout, specs: Sequence[ChildSpec], seed: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.layout = layout
        self.children = {s.name: Child(s) for s in specs}
        self.seed_cluster = seed
        self.clock = clock
        self.stopping = False
        self.stage = "starting"
        self.ready = False
        # Cluster mode: each host's control file as last read (its identity, None: absent)
        # and the status last written into its run dir.
        self._controls: dict[int, FileKey | None] = {}
        self._statuses: dict[int, dict[str, int]] = {}

    # --- children --------------------------------------------------------------------------

    def _spawn(self, child: Child) -> None:
        spec = child.spec
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        logf: IO[bytes]
        with open(spec.log, "ab") as logf:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            logf.write(f"=== {stamp} starting: {shlex.join(spec.argv)}\n".encode())
            logf.flush()
            try:
                child.proc = subprocess.Popen(
                    spec.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    cwd=self.layout.root,
                    env={**os.environ, **spec.env},
                    preexec_fn=_die_with_parent,
                )
            except OSError as e:
                if spec.service is None:
                    raise  # the lab's own plan is broken: nothing to wait for
                # A host's control file names what cannot run: it fails as a unit whose
                # binary is missing does, and is tried again with the backoff.
                logf.write(f"=== cannot start: {e}\n".encode())
                child.failures += 1
                child.next_start = self.clock() + backoff(child.failures)
                log.error("cannot start %s: %s; trying again in %.1fs", spec.name, e,
                          backoff(child.failures))
                return
        child.started_at = self.clock()
        log.info("started %s (pid %d)", spec.name, child.proc.pid)

    def start(self, roles: set[Role]) -> None:
        for child in self.children.values():
            if child.spec.role in roles and child.proc is None:
                self._spawn(child)
        self.publish()

    def powered_off(self) -> set[str]:
        """Machines (hosts, the witness) that `lab kill-node` switched off (a marker file each,
        so that the command and this process agree without a channel of their own)."""
        return {name for i, name in enumerate(self.layout.machine_names, start=1)
                if self.layout.power_marker(i).exists()}

    def shutting_down(self) -> set[str]:
        return {name for i, name in enumerate(self.layout.machine_names, start=1)
                if self.layout.shutdown_marker(i).exists()}

    def _hold_down(self, off: set[str]) -> None:
        """Power loss: whatever of an off host still runs is killed at once, QEMU included."""
        for child in self.children.values():
            if child.spec.host in off and child.proc is not None and child.proc.poll() is None:
                child.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(1)
        for name in off:
            run_dir = self.layout.run_dir(self.layout.machine_index(name))
            # Pidfiles suffice here, unlike in a one-shot kill: this runs every tick, and a
            # start the power loss caught mid-way has its pidfile by the next one.
            qemu = list(host_qemu_pids(run_dir).values())
            if qemu:
                log.warning("%s is powered off: killing its QEMU pids %s", name, qemu)
                procs.signal_all(qemu, signal.SIGKILL)

    def tick(self) -> None:
        """Follow the hosts' control files (cluster mode), reap children that exited and
        restart those whose backoff has passed."""
        now = self.clock()
        changed = False
        off = self.powered_off()
        if off:
            self._hold_down(off)
        down = off | self.shutting_down()
        if self.layout.cluster_mode and not self.stopping:
            for i in range(1, self.layout.machines + 1):
                changed |= self._follow_control(i, down)
        for child in self.children.values():
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                ran = now - child.started_at
                child.failures = 1 if ran >= STABLE_AFTER else child.failures + 1
                log.warning("%s (pid %d) exited with %s after %.1fs", child.spec.name, proc.pid,
                            proc.returncode, ran)
                child.proc = None
                changed = True
                if child.spec.host in down:
                    log.info("%s stays down: host %s is powered off or shutting down",
                             child.spec.name, child.spec.host)
                    child.held, child.failures, child.next_start = True, 0, 0.0
                    continue
                if self.stopping or not child.spec.restart:
                    continue
                child.next_start = now + backoff(child.failures)
                child.restarts += 1
                log.info("restarting %s in %.1fs (restart #%d)", child.spec.name,
                         backoff(child.failures), child.restarts)
            elif proc is None and not self.stopping and child.spec.host not in down and (
                child.held or 0 < child.next_start <= now
            ):
                child.next_start, child.held = 0.0, False
                self._spawn(child)
                changed = True
        if self.layout.cluster_mode:
            self._report_services()
        if changed:
            self.publish()

    # --- cluster mode: the hosts' control files ------------------------------------------

    def _follow_control(self, i: int, down: set[str]) -> bool:
        """Make machine i's children what its control file wants, if the file changed since the
        last look. True when children were stopped or added."""
        key = file_key(self.layout.control_file(i))
        if i in self._controls and self._controls[i] == key:
            return False
        self._controls[i] = key
        host = self.layout.machine_name(i)
        try:
            wanted = wanted_children(self.layout, i, read_wanted(self.layout.run_dir(i), host))
        except ServicesError as e:
            # Logged once per version of the file: the host keeps what it runs until the
            # file reads again.
            log.error("%s; %s keeps its services as they are", e, host)
            return False
        running = [c.spec for c in self.children.values()
                   if c.spec.host == host and c.spec.service is not None]
        plan = changes(running, wanted)
        for name in plan.stop:
            child = self.children.pop(name)
            self._stop_children([child], ETCD_GRACE if child.spec.role == "etcd" else STOP_GRACE)
        for spec in plan.start:
            child = self.children[spec.name] = Child(spec)
            if host in down:
                child.held = True  # starts when the host is powered on again
            else:
                self._spawn(child)
        if plan:
            log.info("%s: %s wants %s", host, self.layout.control_file(i),
                     ", ".join(s.name for s in wanted) or "nothing")
        return bool(plan)

    def _report_services(self) -> None:
        """Write each machine's services-status.json when what runs there changed."""
        for i, host in enumerate(self.layout.machine_names, start=1):
            running: dict[str, int] = {
                c.spec.service: pid for c in self.children.values()
                if c.spec.host == host and c.spec.service is not None
                and (pid := c.pid) is not None
            }
            if self._statuses.get(i) == running:
                continue
            if (not running and i not in self._statuses
                    and not self.layout.control_file(i).exists()
                    and not self.layout.services_status_file(i).exists()):
                continue  # a host with nothing installed gets no file
            write_status(self.layout.run_dir(i), running)
            self._statuses[i] = running

    def _stop_role(self, roles: set[Role], grace: float) -> None:
        self._stop_children([c for c in self.children.values() if c.spec.role in roles], grace)

    def _stop_children(self, victims: list[Child], grace: float) -> None:
        pids = [c.pid for c in victims if c.pid is not None]
        if pids:
            log.info("stopping %s", ", ".join(c.spec.name for c in victims if c.pid))
        # A frozen child (`lab freeze-agent`) would sit out its SIGTERM until the SIGKILL.
        procs.signal_all(pids, signal.SIGCONT)
        killed = procs.terminate(pids, grace)
        if killed:
            log.warning("killed (SIGKILL) pids %s", killed)
        for c in victims:
            if c.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(1)
            c.proc = None
            c.next_start = 0.0

    def stop(self) -> None:
        self.stopping = True
        self.stage = "stopping"
        self.ready = False
        self.publish()
        # A frozen agent (`lab freeze-agent`) would sit out its SIGTERM until the SIGKILL.
        procs.signal_all([c.pid for c in self.children.values() if c.pid], signal.SIGCONT)
        self._stop_role({"api", "agent", "other"}, STOP_GRACE)
        # After the agents, which disarm their watchdogs on the way out.
        self._stop_role({"watchdog"}, STOP_GRACE)
        qemu = procs.qemu_pids(self.layout)
        if qemu:
            log.info("stopping QEMU pids %s", qemu)
            procs.terminate(qemu, STOP_GRACE)
        # One member at a time: a leader stopped together with its followers waits seconds for
        # a leadership transfer that cannot succeed.
        for child in reversed(self.children.values()):
            if child.spec.role == "etcd":
                self._stop_children([child], ETCD_GRACE)
        if self.layout.cluster_mode:
            self._report_services()  # nothing runs any more
        if self.layout.netns:
            netns.down(self.layout)
        with contextlib.suppress(FileNotFoundError):
            self.layout.supervisor_json.unlink()
        log.info("lab stopped")

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "stage": self.stage,
            "ready": self.ready,
            "children": {n: c.pid for n, c in self.children.items()},
            "restarts": {n: c.restarts for n, c in self.children.items()},
            "roles": {n: c.spec.role for n, c in self.children.items()},
            "hosts": {n: c.spec.host for n, c in self.children.items()},
            "powered_off": sorted(self.powered_off()),
            "netns": self.layout.netns,
            "api_url": self.layout.api_url,
        }

    def publish(self) -> None:
        write_json_atomic(self.layout.supervisor_json, self.state())

    # --- startup ---------------------------------------------------------------------------

    def _wait(self, what: str, done: Callable[[], bool], timeout: float = STARTUP_TIMEOUT) -> bool:
        """Supervise until done() holds; False when asked to stop meanwhile."""
        deadline = self.clock() + timeout
        while not self.stopping:
            if done():
                return True
            if self.clock() > deadline:
                raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
            self.tick()
            time.sleep(0.2)
        return False

    def startup(self) -> bool:
        """Bring the lab up; False when a stop was asked for on the way."""
        self.layout.shared_dir.mkdir(parents=True, exist_ok=True)
        # A fresh start is a power-on of every machine.
        for i in range(1, self.layout.machines + 1):
            self.layout.power_marker(i).unlink(missing_ok=True)
        if self.layout.netns:
            self.stage = "network"
            self.publish()
            netns.up(self.layout)
        if self.layout.cluster_mode:
            # The hosts' services start at the first look at their control files, as enabled
            # units start at boot; etcd is theirs to seed (`cluster create`).
            self.stage = "processes"
            self.start({"other"})
            self.tick()
            self.stage = "running"
            self.ready = True
            self.publish()
            log.info("lab ready (cluster mode: the hosts run what their control files want)")
            return True
        self.stage = "etcd"
        self.start({"etcd"})
        urls = self.layout.client_urls
        if not self._wait("etcd", lambda: any(healthy(u) for u in urls)):
            return False
        if self.seed_cluster:
            self.stage = "seeding"
            self.publish()
            if not self._wait("seeding", self._try_seed):
                return False
        self.stage = "processes"
        self.start({"watchdog", "agent", "api", "other"})
        self.stage = "running"
        self.ready = True
        self.publish()
        log.info("lab ready")
        return True

    def _try_seed(self) -> bool:
        async def seeded() -> None:
            async with asyncio.timeout(10):
                await seed(self.layout)

        try:
            asyncio.run(seeded())
            return True
        except Exception as e:  # etcd electing a leader, a member restarting: try again
            log.info("seeding not done yet: %s", e)
            return False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        code = 0
        try:
            if self.startup():
                while not self.stopping:
                    self.tick()
                    time.sleep(0.2)
        except Exception:
            log.exception("lab supervisor failed")
            code = 1
        finally:
            self.stop()
        return code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("got %s: stopping the lab", signal.Signals(signum).name)
        self.stopping = True


def read_or_make_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


async def seed(layout: LabLayout) -> None:
    """Storages and the API token; idempotent, so every start may run it."""
    token = read_or_make_token(layout.token_path)
    async with Store(layout.client_urls) as store:
        have = await store.storages()
        wanted = [
            StorageConfig(id="local", type=StorageType.DIR, path="storage/local"),
            StorageConfig(id="shared", type=StorageType.SHARED_DIR, path=str(layout.shared_dir)),
        ]
        for storage in wanted:
            if storage.id not in have:
                await store.put_storage(storage)
        await store.add_token(token)


def _parse_extra(value: str) -> tuple[str, list[str]]:
    name, sep, cmd = value.partition("=")
    if not sep or not name or not cmd:
        raise argparse.ArgumentTypeError("expected NAME=COMMAND")
    return name, shlex.split(cmd)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corral.lab.supervisor")
    p.add_argument("lab_dir", type=Path)
    p.add_argument("--no-agents", action="store_true", help="etcd (and the API) only")
    p.add_argument("--no-api", action="store_true")
    p.add_argument("--no-seed", action="store_true")
    p.add_argument("--extra", type=_parse_extra, action="append", default=[],
                   metavar="NAME=COMMAND", help="another supervised process (tests)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health probe is noise
    layout = LabLayout.load(args.lab_dir.resolve())
    if layout is None:
        log.error("%s has no lab.json", args.lab_dir)
        return 2
    specs = plan_children(layout, agents=not args.no_agents, api=not args.no_api,
                          extra=args.extra)
    return Supervisor(layout, specs, seed=not args.no_seed).run()


if __name__ == "__main__":
    sys.exit(main())
