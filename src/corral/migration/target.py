"""`vm.receive`: the target host's side of a migration.

Creates fresh volumes for the local disks (never over an existing file), starts an incoming
QEMU held paused (live) or qemu-nbd servers (cold), publishes where the source should send,
then waits for the source's verdict: completed -> run the guest here; anything else -> undo
everything this task created, so an aborted migration leaves no trace on this host.

The verdict is the placement flip (`Placement.moved_by` names the source's task); the record's
`completed` only announces it. A placement moved here by anyone else (HA recovering the VM
from a lost source) is no verdict: the incoming QEMU never got the go, and it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.agent.context import HostContext, Report, TaskFailed, disk_paths, owner_guard
from corral.agent.reconciler import Purpose
from corral.cluster.models import VM, Task, VMRuntime, VMStatus
from corral.host.processes import pid_alive
from corral.migration import qmp, record
from corral.migration.net import NoFreePort, free_port
from corral.migration.params import ReceiveParams
from corral.migration.record import MigrationRecord, NbdEndpoint, Phase
from corral.qemu import process, tls
from corral.storage.volumes import create_volume, volume_format

log = logging.getLogger(__name__)
PARENT_CHECK_SECONDS = 1.0
NBD_START_TIMEOUT = 10.0


@dataclass
class Receiver:
    ctx: HostContext
    task: Task
    vm: VM
    report: Report
    rec: MigrationRecord
    created: list[Path] = field(default_factory=list)
    nbd_pids: list[int] = field(default_factory=list)
    qemu_started: bool = False

    @property
    def vmid(self) -> int:
        return self.vm.vmid

    async def address(self) -> str:
        node = await self.ctx.store.node(self.ctx.node)
        return node.info.address if node and node.info else "127.0.0.1"

    async def create_volumes(self, paths: list[Path]) -> None:
        for i in self.rec.local_disks:
            disk, path = self.vm.config.disks[i], paths[i]
            # An existing file may be another VM's disk or a leftover worth inspecting.
            if path.exists() or not await create_volume(path, disk.size_mb):
                raise TaskFailed(f"volume {disk.volume} already exists on {self.ctx.node}: "
                                 "not overwriting it")
            self.created.append(path)

    def port(self, host: str) -> int:
        """A port to listen on for the source: within this host's migration range, if any."""
        try:
            return free_port(host, self.ctx.migration_ports)
        except NoFreePort as e:
            raise TaskFailed(str(e)) from None

    async def prepare_live(self, paths: list[Path], host: str) -> dict[str, Any]:
        driver = self.ctx.driver
        await driver.start(self.vm.config, paths, incoming="defer", guard=owner_guard(
            self.ctx, self.vmid, Purpose.RECEIVE, receive_task=self.task.id))
        self.qemu_started = True
        await qmp.hold_after_incoming(driver, self.vmid)
        creds = None
        if self.ctx.qemu_tls is not None:  # only a peer with a certificate of the cluster CA
            creds = await tls.ensure_creds(driver, self.vmid, "server", self.ctx.qemu_tls)
            await driver.qmp(self.vmid, "migrate-set-parameters", {"tls-creds": creds})
        nbd: list[NbdEndpoint] = []
        if self.rec.local_disks:
            nbd = await qmp.export_disks(driver, self.vmid, self.rec.local_disks, host,
                                         self.port(host), creds)
        uri = f"tcp:{host}:{self.port(host)}"
        await driver.qmp(self.vmid, "migrate-incoming", {"uri": uri})
        return {"migrate_uri": uri, "nbd": nbd, "tls": creds is not None}

    async def prepare_cold(self, paths: list[Path], host: str) -> dict[str, Any]:
        nbd = []
        for i in self.rec.local_disks:
            port = self.port(host)
            pidfile = self.ctx.driver.run_dir / f"{self.vmid}.nbd{i}.pid"
            pidfile.unlink(missing_ok=True)
            self.ctx.driver.run_dir.mkdir(parents=True, exist_ok=True)
            export = f"disk{i}"
            creds = ([f"--object={tls.creds_option('server', self.ctx.qemu_tls)}",
                      f"--tls-creds={tls.CREDS_ID['server']}"] if self.ctx.qemu_tls else [])
            # --fork returns once the server listens; --persistent outlives a reconnect.
            proc = await asyncio.create_subprocess_exec(
                "qemu-nbd", "--fork", "--persistent", f"--pid-file={pidfile}", *creds,
                f"--format={volume_format(paths[i])}", f"--export-name={export}",
                f"--bind={host}", f"--port={port}", str(paths[i]),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            async with asyncio.timeout(NBD_START_TIMEOUT):
                _, err = await proc.communicate()
            pid = process.read_pidfile(pidfile)
            if proc.returncode != 0 or pid is None:
                raise TaskFailed(f"qemu-nbd for disk {i} failed: {err.decode().strip()}")
            self.nbd_pids.append(pid)
            nbd.append(NbdEndpoint(disk=i, host=host, port=port, export=export))
        return {"nbd": nbd, "tls": self.ctx.qemu_tls is not None}

    def flipped_here(self, vm: VM | None) -> bool:
        """The source's switchover gave the VM to this host."""
        return (vm is not None and vm.placement.node == self.ctx.node
                and self.rec.flipped_in(vm.placement))

    async def check_placement(self) -> MigrationRecord | None:
        """The verdict when the placement shows the flip the record has not announced (the
        source was cut off in between); raise when the VM left the source any other way."""
        vm = await self.ctx.store.vm(self.vmid)
        if vm is not None and vm.placement.node == self.rec.source:
            return None
        if self.flipped_here(vm):
            return self.rec.model_copy(update={"phase": Phase.COMPLETED})
        where = f"moved to {vm.placement.node}" if vm is not None else "deleted"
        raise TaskFailed(f"VM {self.vmid} was {where} by something other than this migration")

    async def wait_verdict(self, timeout: float) -> MigrationRecord:
        """Block until the source completes the migration; raise on anything else."""
        deadline = time.monotonic() + timeout
        last_parent_check = 0.0
        async with record.Watch(self.ctx.store, self.vmid) as watch:
            while True:
                rec = watch.record
                if rec is None or rec.task != self.rec.task:
                    # The source removes it once it is done: after a flip this host was too
                    # slow to see announced, the guest is this host's to run all the same.
                    if self.flipped_here(await self.ctx.store.vm(self.vmid)):
                        return self.rec.model_copy(update={"phase": Phase.COMPLETED})
                    raise TaskFailed("the migration record disappeared")
                if rec.phase is Phase.COMPLETED:
                    return rec
                if rec.phase is Phase.ABORTED:
                    raise TaskFailed(f"migration aborted: {rec.error}")
                if self.qemu_started and self.ctx.driver.pid(self.vmid) is None:
                    raise TaskFailed(f"the incoming QEMU on {self.ctx.node} exited")
                if any(not pid_alive(pid) for pid in self.nbd_pids):
                    raise TaskFailed(f"qemu-nbd on {self.ctx.node} exited")
                now = time.monotonic()
                if now - last_parent_check > PARENT_CHECK_SECONDS:
                    last_parent_check = now
                    if (flipped := await self.check_placement()) is not None:
                        return flipped
                    parent = await self.ctx.store.task(self.rec.task)
                    if parent is None or parent.state.finished:
                        raise TaskFailed("the source's migration task ended without completing")
                if now > deadline:
                    raise TaskFailed(f"the source did not complete within {timeout:.0f}s")
                await watch.wait(0.5)

    async def stop_nbd(self) -> None:
        for pid in self.nbd_pids:
            process.kill(pid, signal.SIGTERM)  # qemu-nbd flushes the image before it exits
        for pid in self.nbd_pids:
            for _ in range(200):
                if not pid_alive(pid):
                    break
                await asyncio.sleep(0.05)
            else:
                process.kill(pid)
        self.nbd_pids.clear()

    async def switch_over(self, rec: MigrationRecord) -> dict[str, Any]:
        """The placement names this host now: make the guest run here."""
        if rec.mode == "cold":
            await self.stop_nbd()
            return {}
        driver = self.ctx.driver
        if rec.local_disks:
            await qmp.unexport_disks(driver, self.vmid)
        if rec.resume:
            # The placement named this host at the flip; a freeze since may have ended that.
            await driver.resume(self.vmid, guard=owner_guard(self.ctx, self.vmid,
                                                             Purpose.RESUME))
        resumed_at = time.time()
        pid = driver.pid(self.vmid)
        status = VMStatus.RUNNING if rec.resume else VMStatus.PAUSED
        await self.ctx.store.put_runtime(self.vmid, VMRuntime(
            node=self.ctx.node, status=status, pid=pid, accel=driver.accel,
            started_at=time.time()))
        return {"resumed_at": resumed_at, "pid": pid}

    async def clean_up(self) -> None:
        """Undo what this task created, unless the switchover gave the VM to this host."""
        current = await self.ctx.store.vm(self.vmid)
        if self.flipped_here(current):
            log.error("VM %s: receive failed after the switchover; leaving it in place",
                      self.vmid)
            return
        await self.stop_nbd()
        if self.qemu_started:
            # Even if the VM was meanwhile placed here by someone else (HA recovery): this
            # QEMU's guest state, whole or not, never got the go. Whoever placed the VM here
            # boots it afresh.
            await self.ctx.driver.stop(self.vmid)
        if current is not None and current.placement.node == self.ctx.node:
            if self.created:
                log.warning("VM %s: placed here meanwhile; keeping volumes %s", self.vmid,
                            ", ".join(map(str, self.created)))
            return  # its disks now, if anything
        for path in self.created:
            path.unlink(missing_ok=True)


async def receive(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    params = ReceiveParams.model_validate(task.params)
    rec, _ = await record.read(ctx.store, vm.vmid)
    if rec is None or rec.receive_task != task.id or rec.phase is not Phase.PREPARING:
        raise TaskFailed("no migration is waiting for this host (aborted or superseded)")
    if vm.placement.node != rec.source:
        await record.abort(ctx.store, vm.vmid, f"VM {vm.vmid} is on {vm.placement.node} now")
        raise TaskFailed(f"VM {vm.vmid} is no longer on {rec.source}, the migration's source")
    if ctx.driver.pid(vm.vmid) is not None:
        await record.abort(ctx.store, vm.vmid, f"VM {vm.vmid} already has a QEMU on {ctx.node}")
        raise TaskFailed(f"VM {vm.vmid} already has a QEMU process on {ctx.node}")
    r = Receiver(ctx, task, vm, report, rec)
    try:
        paths = await disk_paths(ctx, vm)
        await r.create_volumes(paths)
        host = await r.address()
        await report(0.1, f"preparing {rec.mode} migration from {params.source}")
        ready = await (r.prepare_live(paths, host) if rec.mode == "live"
                       else r.prepare_cold(paths, host))
        stored = await record.update(ctx.store, vm.vmid, lambda cur: cur.model_copy(
            update={"phase": Phase.READY, **ready}) if cur.phase is Phase.PREPARING else None)
        if stored is None or stored.phase is not Phase.READY:
            raise TaskFailed(f"migration aborted: {stored.error if stored else 'record gone'}")
        await report(0.2, f"ready: {ready.get('migrate_uri') or 'nbd'}")
        verdict = await r.wait_verdict(params.timeout)
        result = await r.switch_over(verdict)
        await report(1.0, f"VM {vm.vmid} now runs on {ctx.node}" if rec.mode == "live"
                     else f"VM {vm.vmid}'s disks are on {ctx.node}")
        return result
    except BaseException as e:
        reason = str(e) or type(e).__name__
        with contextlib.suppress(Exception):
            await record.abort(ctx.store, vm.vmid, f"target {ctx.node}: {reason}")
        await asyncio.shield(r.clean_up())
        raise
