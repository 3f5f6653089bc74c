"""A clean shutdown of the host (reboot, power-off): the agent carries out the cluster's
shutdown policy before it goes, so the cluster knows what became of the host's VMs instead of
waiting for a watchdog that will never need to fire.

1. It says so (`HostShutdown`, written only while it holds its lease) and brings no guest up
   from then on; HA then leaves the host's VMs alone (`ha.machine`).
2. Policy migrate: maintenance empties the host (live migrations, run by this agent's task
   runner), within a bound.
3. The task runner and the monitor stop (so nothing records the VMs as stopped: their
   placements keep saying what should run when the host returns), every QEMU is shut down
   (ACPI, then a hard stop) and reported stopped.
4. Only when no QEMU is left: `done`. The caller then disarms the watchdog and gives up the
   lease, and HA recovers (failover, migrate) or keeps (freeze) the VMs at once.

Anything failing on the way leaves the host as an ordinary lost one: lease expiry, watchdog,
fence wait, recovery.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path

from corral.agent.context import HostContext
from corral.agent.reconciler import (
    Policy,
    ShutdownKind,
    asks_maintenance,
    ends_shutdown_maintenance,
    shutdown_policy,
)
from corral.agent.settings import HOST_SHUTDOWN_MARKER
from corral.cluster import keys
from corral.cluster.models import HostShutdown, NodeRequest, VMRuntime, VMStatus
from corral.cluster.records import UnreadableRecord
from corral.ha.models import HAConfig
from corral.ha.store import get_config, read_all
from corral.manager.maintenance import maintenance_status

log = logging.getLogger(__name__)

# systemd's targets for a host going down, and what each means for the policy.
TARGETS: dict[str, ShutdownKind] = {
    "reboot.target": "reboot", "kexec.target": "reboot", "soft-reboot.target": "reboot",
    "poweroff.target": "poweroff", "halt.target": "poweroff",
}
EVACUATE_POLL = 1.0
SETTLE = 0.5


def kind_from_jobs(jobs: str) -> ShutdownKind | None:
    """What `systemctl list-jobs --no-legend` says the host is about to do, if it goes down
    (lines: JOB UNIT TYPE STATE)."""
    found: ShutdownKind | None = None
    for line in jobs.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "start" and parts[1] in TARGETS:
            if TARGETS[parts[1]] == "reboot":
                return "reboot"
            found = "poweroff"
    return found


def host_going_down(run_dir: Path) -> ShutdownKind | None:
    """Whether this stop of the agent is part of the host's shutdown (and which kind), or
    only the agent stopping (a restart, an upgrade): then its VMs keep running."""
    try:
        said = (run_dir / HOST_SHUTDOWN_MARKER).read_text().strip()
    except OSError:
        said = None
    if said is not None:
        return "reboot" if said == "reboot" else "poweroff"
    if not Path("/run/systemd/system").is_dir():
        return None  # systemd is not PID 1: nothing else can tell
    try:
        jobs = subprocess.run(["systemctl", "list-jobs", "--no-legend", "--no-pager"],
                              capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError) as e:
        log.warning("cannot tell whether the host shuts down: %s", e)
        return None
    return kind_from_jobs(jobs)


def clear_marker(run_dir: Path) -> None:
    (run_dir / HOST_SHUTDOWN_MARKER).unlink(missing_ok=True)


async def cluster_policy(ctx: HostContext) -> HAConfig:
    try:
        return await get_config(ctx.store)
    except UnreadableRecord as e:
        log.error("the cluster's HA settings do not decode (%s): using the defaults", e)
        return HAConfig()


class HostShutdownRun:
    """One clean shutdown of this host; `refuses_guests` tells the task runner to bring no
    guest up any more."""

    def __init__(self, ctx: HostContext, life: float, vm_timeout: float,
                 evacuate_timeout: float) -> None:
        self.ctx = ctx
        self.life = life  # this agent's NodeInfo.started_at
        self.vm_timeout = vm_timeout
        self.evacuate_timeout = evacuate_timeout
        self.refuses_guests = False

    async def announce(self, kind: ShutdownKind) -> HostShutdown | None:
        """Say that the host shuts down and under which policy; None when that cannot be
        said under this agent's lease (the cluster then treats the host as lost)."""
        self.refuses_guests = True
        config = await cluster_policy(self.ctx)
        policy: Policy = shutdown_policy(config.shutdown_policy, kind)
        record = HostShutdown(policy=policy, kind=kind, life=self.life)
        if not await self._say(record):
            return None
        log.warning("host %s shuts down (%s): policy %s", self.ctx.node, kind, policy)
        if policy == "migrate":
            node = await self.ctx.store.node(self.ctx.node)
            if asks_maintenance(policy, node.request if node else None):
                await self.ctx.store.put(keys.node(self.ctx.node, "request"),
                                         NodeRequest(maintenance=True, by="shutdown"))
        return record

    async def evacuate(self) -> None:
        """Wait (bounded) until maintenance has moved off everything it can."""
        deadline = time.monotonic() + self.evacuate_timeout
        while time.monotonic() < deadline:
            snap, ha = await read_all(self.ctx.store, time.time())
            status = maintenance_status(snap, self.ctx.node, ha.rules)
            if status.state == "in-maintenance":
                left = status.staying + status.stopped + list(status.stuck)
                log.info("host %s emptied for its shutdown%s", self.ctx.node,
                         f"; left here: {sorted(left)}" if left else "")
                return
            await asyncio.sleep(EVACUATE_POLL)
        log.error("host %s: not emptied within %gs; what is left is shut down",
                  self.ctx.node, self.evacuate_timeout)

    async def stop_guests(self) -> None:
        """Shut every QEMU of the host down, at once: ACPI, a hard stop after the timeout."""
        running = sorted(self.ctx.driver.running())
        if running:
            log.warning("shutting down VM(s) %s for the host's shutdown", running)
        await asyncio.gather(*(self._stop(vmid) for vmid in running))

    async def _stop(self, vmid: int) -> None:
        try:
            clean = await self.ctx.driver.shutdown(vmid, self.vm_timeout)
        except Exception as e:  # the next VMs still go down; `done` checks what is left
            log.error("VM %s did not stop: %s", vmid, e)
            return
        log.info("VM %s %s", vmid, "powered off" if clean else "stopped hard")
        # Its placement stays as it is: it says whether the VM runs when the host returns.
        # Reported only while it is still placed here: after a freeze of this agent it may
        # run elsewhere by now, and a stale `stopped` from here would hide that.
        try:
            vm = await self.ctx.store.vm(vmid)
        except UnreadableRecord:
            vm = None
        if vm is None or vm.placement.node != self.ctx.node or not \
                await self.ctx.store.put_runtime(vmid, VMRuntime(
                    node=self.ctx.node, status=VMStatus.STOPPED, accel=self.ctx.driver.accel,
                    message="stopped for the host's shutdown"), vm.placement_rev):
            log.warning("VM %s is no longer placed here: its stop is not reported", vmid)

    async def finish(self, record: HostShutdown) -> bool:
        """`done`, if no QEMU is left: the last word of this host before its lease goes."""
        await asyncio.sleep(SETTLE)  # a QEMU still daemonising writes its pidfile by then
        left = self.ctx.driver.running()
        if left:
            log.error("VM(s) %s still run: the host is left to its watchdog", sorted(left))
            return False
        return await self._say(record.model_copy(update={"done": True}))

    async def _say(self, record: HostShutdown) -> bool:
        lease = self.ctx.lease.lease_id if self.ctx.lease is not None else None
        if lease is None or not await self.ctx.store.put_while_leased(
                keys.node(self.ctx.node, "shutdown"), record, self.ctx.node, lease):
            log.error("host %s: its lease is gone; the shutdown is not announced",
                      self.ctx.node)
            return False
        return True


async def after_return(ctx: HostContext) -> None:
    """At start, once registered: the last life's shutdown record is void, and maintenance
    that the shutdown asked for (policy migrate) ends, so the host's VMs come back."""
    await ctx.store.delete(keys.node(ctx.node, "shutdown"))
    node = await ctx.store.node(ctx.node)
    if ends_shutdown_maintenance(node.request if node else None):
        log.info("host %s is back: ending the maintenance its shutdown asked for", ctx.node)
        await ctx.store.put(keys.node(ctx.node, "request"), NodeRequest(maintenance=False))
