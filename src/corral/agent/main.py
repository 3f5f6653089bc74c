"""corral-agent: one per host. Registers the host, adopts its QEMU processes, runs tasks,
reports usage and VM state, serves the serial console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from typing import Any

import uvicorn

from corral import __version__
from corral.agent import sampler, standing_watch
from corral.agent.console import console_app
from corral.agent.context import (
    HostContext,
    TaskFailed,
    disk_paths,
    is_running,
    owner_guard,
    record,
)
from corral.agent.history import UsageHistory
from corral.agent.liveness import Liveness
from corral.agent.monitor import Monitor
from corral.agent.reconciler import Do, Placed, Purpose, ShutdownKind, plan_startup
from corral.agent.settings import Accel, AgentSettings, published_fence_time
from corral.agent.shutdown import HostShutdownRun, after_return, clear_marker, host_going_down
from corral.agent.tasks import TaskRunner
from corral.aio import cancel_and_wait
from corral.cluster.models import VMStatus
from corral.cluster.records import UnreadableRecord
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.cluster.view_gc import freeze_listed
from corral.fencing.client import WatchdogClient
from corral.host.config import url
from corral.manager import loop as manager
from corral.migration.recovery import recover_interrupted
from corral.qemu.accel import probe_accel
from corral.qemu.driver import QemuDriver
from corral.qemu.tls import credentials_dir

log = logging.getLogger("corral.agent")
HISTORY_WRITE_SECONDS = 10.0  # a stuck disk must not hold up the agent's exit


async def choose_accel(settings: AgentSettings) -> Accel:
    if settings.accel != "auto":
        return settings.accel
    # A boot probe, not the presence of /dev/kvm: nested KVM can exist and still crawl.
    return await asyncio.to_thread(probe_accel, settings.images_dir, settings.run_dir)


BACKLOG = 128


def bind(settings: AgentSettings) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.listen_host, settings.listen_port))
    # Listening from the start: the host registers its console's address before the server
    # runs, and a connection made in between waits in the backlog instead of being refused.
    sock.listen(BACKLOG)
    return sock


def console_config(settings: AgentSettings, app: Any) -> uvicorn.Config:
    """The console endpoint: with TLS, only a client with a certificate of the cluster CA (the
    API's relay) gets as far as the token check."""
    tls = settings.tls.uvicorn_kwargs("required") if settings.tls else {}
    return uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **tls)


async def reconcile_at_start(ctx: HostContext, start_vm: Any) -> None:
    vms, unreadable = await ctx.store.vms_and_unreadable()
    placed = [Placed(v.vmid, v.placement.node, v.placement.state) for v in vms]
    running = ctx.driver.running()
    for vmid in sorted(unreadable & running.keys()):
        # Not an orphan: its record exists but does not decode. Its QEMU is left as it is.
        log.warning("startup: VM %s runs here but its record does not decode; left alone", vmid)
    running = {vmid: pid for vmid, pid in running.items() if vmid not in unreadable}
    for action in plan_startup(ctx.node, placed, running):
        log.info("startup: %s VM %s %s", action.do, action.vmid, action.reason)
        try:
            if action.do is Do.KILL_ORPHAN:
                log.error("VM %s: a QEMU runs here but the VM is %s: killing it", action.vmid,
                          action.reason)
                await ctx.driver.stop(action.vmid)
            elif action.do is Do.ADOPT:
                if await recover_interrupted(ctx, action.vmid):
                    await start_vm(action.vmid)  # its stale copy is gone: afresh, if meant to
            elif action.do is Do.START:
                await start_vm(action.vmid)
        except UnreadableRecord as e:  # changed since the read above: leave it, go on
            log.warning("startup: VM %s left as it is: %s", action.vmid, e)


def watchdog_client(settings: AgentSettings) -> WatchdogClient | None:
    if settings.watchdog_socket is None:
        log.warning("no watchdog (--watchdog-socket): a hung agent cannot fence this host, "
                    "so HA recovery of its VMs is not safe")
        return None
    return WatchdogClient(settings.watchdog_socket, f"agent-{settings.node}")


async def arm_watchdog(settings: AgentSettings, watchdog: WatchdogClient | None
                       ) -> tuple[float, float]:
    """Arm the watchdog and wait (bounded) for its acknowledgement: the fence time to publish
    (0: not fenceable by the clock) and the renewal interval."""
    if watchdog is None:
        return 0.0, settings.renew_interval()
    ack = await asyncio.to_thread(watchdog.arm, settings.watchdog_arm_wait)
    interval = settings.renew_interval(ack.timeout if ack else None)
    fence, why = published_fence_time(ack, interval, settings.lease_ttl)
    if fence > 0:
        log.info("watchdog at %s armed: %s", settings.watchdog_socket, why)
    else:
        log.error("PUBLISHING NO WATCHDOG (0): %s. HA will not recover this host's VMs "
                  "without a confirmed power-off (`corral ha confirm-fenced`)", why)
    return fence, interval


async def run(settings: AgentSettings) -> None:
    settings.check()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    clear_marker(settings.run_dir)  # a shutdown of an earlier life, not of this one
    watchdog = watchdog_client(settings)
    accel = await choose_accel(settings)
    driver = QemuDriver(settings.run_dir, settings.images_dir, accel)
    sock = bind(settings)
    host, port = sock.getsockname()[:2]
    async with Store(settings.etcd, tls=settings.tls, follow_members=True) as store:
        # A host the cluster was rebuilt without takes no lease from it: it waits here.
        await standing_watch.hold_while_dropped(settings.node, settings.etcd, settings.tls,
                                                settings.run_dir)
        # Arm only once etcd answers: an agent that cannot reach its store at boot must not
        # have its host reset in a loop. From the arming on, a stall past the client timeout
        # fences this host, as any missed renewal does later.
        await store.node(settings.node)
        # From the arming on, SIGTERM is a clean stop, also while the agent still starts: it
        # ends after the start-up, disarming the watchdog when no VM runs. Killed at once by
        # the default action, it would leave the watchdog to fence an empty host.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        fence_time, interval = await arm_watchdog(settings, watchdog)
        liveness = Liveness(store, settings.node, settings.lease_ttl, interval,
                            watchdog.feed if watchdog else None)
        ctx = HostContext(settings.node, settings.data_dir, store, driver, liveness,
                          qemu_tls=(credentials_dir(settings.run_dir, settings.tls)
                                    if settings.tls else None),
                          migration_ports=settings.migration_ports)
        info = sampler.static_info(
            settings.node, host, url(settings.scheme, host, port), accel, {"corral": __version__},
            lease_ttl=settings.lease_ttl, watchdog_timeout=fence_time, renew_interval=interval,
        )
        await liveness.register(info)
        log.info("host %s registered (accel %s, console on %s:%s)", settings.node, accel,
                 host, port)
        await after_return(ctx)
        runner = TaskRunner(ctx)
        # The cluster as a watch keeps it: the monitor judges this host's QEMUs against it and
        # the manager decides on it when this agent leads.
        view = ClusterView(store)
        await view.start()
        freeze_listed(view)
        monitor = Monitor(ctx, runner.claims, view)

        async def start_vm(vmid: int) -> None:
            vm = await store.vm(vmid)
            if vm is not None and not is_running(ctx, vmid):
                try:
                    # The VM may have moved, or been stopped, since the reconcile read it.
                    pid = await driver.start(vm.config, await disk_paths(ctx, vm),
                                             guard=owner_guard(ctx, vmid, Purpose.RESTORE))
                    # Reported now, not on the monitor's next pass: HA waits for it.
                    await record(ctx, vm, None, VMStatus.RUNNING, pid)
                except TaskFailed as e:
                    log.warning("VM %s not started: %s", vmid, e)
                except Exception as e:
                    log.error("VM %s did not start: %s", vmid, e)

        # Renewing from now on: the start-up reconcile proves ownership under this lease.
        lease_job = asyncio.create_task(liveness.keep_alive(), name="lease")
        await reconcile_at_start(ctx, start_vm)
        history = UsageHistory(settings.node, settings.usage_dir, driver,
                               lambda: view.snapshot(time.time()),
                               own_machine=not settings.shared_machine)
        with contextlib.suppress(Exception):  # no history is no reason not to run the host
            await history.load()
        server = uvicorn.Server(console_config(
            settings, console_app(store, driver, settings.node, history)))

        async def usage_loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await liveness.publish_usage(
                        sampler.sample(monitor.running_count, settings.data_dir))
                await asyncio.sleep(settings.usage_interval)

        async def recent_loop() -> None:
            while True:
                await asyncio.sleep(settings.recent_interval)
                if (recent := history.recent_usage()) is not None:
                    with contextlib.suppress(Exception):  # the next one replaces it
                        await liveness.publish_recent(recent)

        tasks_job = asyncio.create_task(runner.run(), name="tasks")
        monitor_job = asyncio.create_task(monitor.run(settings.monitor_interval), name="monitor")

        async def shut_down_host(kind: ShutdownKind) -> None:
            """The host goes down: carry out the cluster's shutdown policy while the lease,
            the manager and the console still run."""
            run = HostShutdownRun(ctx, info.started_at, settings.vm_shutdown_timeout,
                                  settings.evacuate_timeout)
            runner.shutting_down = True
            try:
                record = await run.announce(kind)
                if record is None:
                    return
                if record.policy == "migrate":
                    await run.evacuate()
                # Nothing may record the guests stopped now: their placements stay. So the
                # monitor must have ended, not only been told to, before a guest stops.
                await cancel_and_wait([tasks_job, monitor_job])
                await runner.drain(settings.vm_shutdown_timeout)
                await run.stop_guests()
                if await run.finish(record):
                    log.warning("host %s: every VM stopped; shutdown announced as done",
                                settings.node)
            except Exception:
                log.exception("the host's shutdown policy failed: left to its watchdog")

        jobs = [
            lease_job,
            tasks_job,
            monitor_job,
            asyncio.create_task(usage_loop(), name="usage"),
            asyncio.create_task(history.run(), name="usage-history"),
            asyncio.create_task(recent_loop(), name="recent-usage"),
            asyncio.create_task(server.serve(sockets=[sock]), name="console"),
            # Every agent campaigns; the elected one runs the manager's decisions.
            asyncio.create_task(manager.serve(store, view, settings.node,
                                              lambda: liveness.lease), name="manager"),
            asyncio.create_task(standing_watch.watch(settings.node, settings.etcd, settings.tls,
                                                     settings.run_dir, liveness.known_alive),
                                name="membership"),
        ]
        waiter = asyncio.create_task(stop.wait())
        log.info("agent of %s is up%s", settings.node,
                 ": asked to stop while starting, stopping" if stop.is_set() else "")
        done, _ = await asyncio.wait([*jobs, waiter], return_when=asyncio.FIRST_COMPLETED)
        failed = [job for job in done if job is not waiter]
        for job in failed:
            log.error("%s stopped: %r", job.get_name(), job.exception())
        if not failed and (kind := await asyncio.to_thread(host_going_down, settings.run_dir)):
            await shut_down_host(kind)
        server.should_exit = True
        await cancel_and_wait(jobs)
        with contextlib.suppress(Exception):  # the samples since the last write
            async with asyncio.timeout(HISTORY_WRITE_SECONDS):
                await history.persist()
        await runner.stop()
        await view.close()
        # VMs keep running: QEMU processes outlive the agent and are adopted on its return.
        # While any runs, the host must stay fenceable: the lease is left to expire and the
        # watchdog stays armed, so a restart in time finds them running, and an agent that
        # does not come back has them killed before the manager may recover them elsewhere.
        if not failed and not driver.running():
            if watchdog is not None:
                watchdog.disarm()
            await liveness.release()
        log.info("agent of %s stopped", settings.node)
        if failed:
            # A non-zero exit: systemd (or the lab supervisor) restarts the agent.
            raise SystemExit(1)
