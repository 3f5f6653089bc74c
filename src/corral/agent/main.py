"""corral-agent: one per host. Registers the host, adopts its QEMU processes, runs tasks,
reports usage and VM state, serves the serial console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from typing import Any

import uvicorn

from corral import __version__
from corral.agent import sampler
from corral.agent.actions import HostContext, is_running
from corral.agent.console import console_app
from corral.agent.liveness import Liveness
from corral.agent.monitor import Monitor
from corral.agent.reconciler import Do, Placed, plan_startup
from corral.agent.settings import Accel, AgentSettings
from corral.agent.tasks import TaskRunner
from corral.cluster.store import Store
from corral.qemu.accel import probe_accel
from corral.qemu.driver import QemuDriver

log = logging.getLogger("corral.agent")


async def choose_accel(settings: AgentSettings) -> Accel:
    if settings.accel != "auto":
        return settings.accel
    # A boot probe, not the presence of /dev/kvm: nested KVM can exist and still crawl.
    return await asyncio.to_thread(probe_accel, settings.images_dir, settings.run_dir)


def bind(settings: AgentSettings) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.listen_host, settings.listen_port))
    return sock


async def reconcile_at_start(ctx: HostContext, start_vm: Any) -> None:
    vms = await ctx.store.vms()
    placed = [Placed(v.vmid, v.placement.node, v.placement.state) for v in vms]
    running = ctx.driver.running()
    for action in plan_startup(ctx.node, placed, running):
        log.info("startup: %s VM %s %s", action.do, action.vmid, action.reason)
        if action.do is Do.KILL_ORPHAN:
            await ctx.driver.stop(action.vmid)
        elif action.do is Do.START:
            await start_vm(action.vmid)


async def run(settings: AgentSettings) -> None:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    accel = await choose_accel(settings)
    driver = QemuDriver(settings.run_dir, settings.images_dir, accel)
    sock = bind(settings)
    host, port = sock.getsockname()[:2]
    async with Store(settings.etcd) as store:
        ctx = HostContext(settings.node, settings.data_dir, store, driver)
        liveness = Liveness(store, settings.node, settings.lease_ttl)
        info = sampler.static_info(settings.node, host, f"http://{host}:{port}", accel,
                                   {"corral": __version__})
        await liveness.register(info)
        log.info("host %s registered (accel %s, console on %s:%s)", settings.node, accel,
                 host, port)
        runner = TaskRunner(ctx)
        monitor = Monitor(ctx, runner.busy)

        async def start_vm(vmid: int) -> None:
            from corral.agent.actions import disk_paths
            vm = await store.vm(vmid)
            if vm is not None and not await is_running(ctx, vmid):
                try:
                    await driver.start(vm.config, await disk_paths(ctx, vm))
                except Exception as e:
                    log.error("VM %s did not start: %s", vmid, e)

        await reconcile_at_start(ctx, start_vm)
        server = uvicorn.Server(uvicorn.Config(console_app(store, driver), log_level="warning",
                                               access_log=False, lifespan="off"))

        async def usage_loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await liveness.publish_usage(sampler.sample(monitor.running_count))
                await asyncio.sleep(settings.usage_interval)

        jobs = [
            asyncio.create_task(liveness.keep_alive(), name="lease"),
            asyncio.create_task(runner.run(), name="tasks"),
            asyncio.create_task(monitor.run(settings.monitor_interval), name="monitor"),
            asyncio.create_task(usage_loop(), name="usage"),
            asyncio.create_task(server.serve(sockets=[sock]), name="console"),
        ]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*jobs, waiter], return_when=asyncio.FIRST_COMPLETED)
        failed = [job for job in done if job is not waiter]
        for job in failed:
            log.error("%s stopped: %r", job.get_name(), job.exception())
        server.should_exit = True
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        # VMs keep running: QEMU processes outlive the agent and are adopted on its return.
        await liveness.release()
        log.info("agent of %s stopped", settings.node)
        if failed:
            # A non-zero exit: systemd (or the lab supervisor) restarts the agent.
            raise SystemExit(1)
