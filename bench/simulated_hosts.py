"""SimulatedHosts: N simulated hosts in one process, for the control-plane bench. No QEMU.

    python bench/simulated_hosts.py --etcd URLS --hosts 64 [--ready-file PATH]

Each simulated host does what an agent does towards etcd: writes its info, grants a lease,
binds its alive key to it, keeps it alive (every TTL/3) and publishes a usage sample every few
seconds (the agent's keys and models, from corral.cluster). One task watch serves all of
them: a task addressed to a simulated host is claimed and finished as an agent would, without
a guest: vm.create records the VM stopped, vm.delete deletes its record, every other kind
fails ("simulated host: runs no guests"), so nothing stays queued for ever.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

from corral.cluster import keys
from corral.cluster.models import NodeInfo, NodeUsage, Task, TaskState, VMRuntime, VMStatus
from corral.cluster.records import decode, dump
from corral.cluster.store import Store

log = logging.getLogger("simulated-hosts")
SIM_CPUS = 32
SIM_MEMORY_MB = 256 * 1024


def host_names(count: int, prefix: str = "sim-host") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(count)]


class SimulatedHost:
    def __init__(self, store: Store, name: str, ttl: int, usage_interval: float) -> None:
        self.store = store
        self.name = name
        self.ttl = ttl
        self.usage_interval = usage_interval
        self.lease: Any = None

    async def register(self) -> None:
        info = NodeInfo(name=self.name, cpus=SIM_CPUS, memory_mb=SIM_MEMORY_MB,
                        agent_url="", accel="tcg", lease_ttl=self.ttl, watchdog_timeout=0.0,
                        renew_interval=self.ttl / 3, versions={"corral": "simulated"})
        await self.store.put(keys.node(self.name, "info"), info)
        await self._new_lease()

    async def _new_lease(self) -> None:
        self.lease = await self.store.grant_lease(self.ttl)
        await self.store.client.put(keys.node(self.name, "alive").encode(), b"1",
                                    lease=self.lease)

    async def keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if await self.store.refresh_lease(self.lease) <= 0:
                    log.warning("lease of %s expired; registering again", self.name)
                    await self._new_lease()
            except Exception as e:  # etcd busy: the next round tries again
                log.warning("%s: lease renewal failed: %s", self.name, e)

    async def publish_usage(self, offset: float) -> None:
        await asyncio.sleep(offset)  # hosts spread over the interval, as independent agents
        while True:
            usage = NodeUsage(cpu=0.05, memory_used_mb=SIM_MEMORY_MB // 10,
                              memory_total_mb=SIM_MEMORY_MB, load1=0.1, vms_running=0)
            with contextlib.suppress(Exception):
                await self.store.client.put(keys.node(self.name, "usage").encode(),
                                            dump(usage), lease=self.lease)
            await asyncio.sleep(self.usage_interval)


class SimulatedTaskRunner:
    """Finishes the tasks addressed to the simulated hosts, the way an agent would."""

    def __init__(self, store: Store, hosts: set[str]) -> None:
        self.store = store
        self.hosts = hosts
        self.done = 0

    async def run(self) -> None:
        items, rev = await self.store.snapshot(keys.TASKS)
        for key, value, mod_rev in items:
            await self._maybe_run(key, value, mod_rev)
        async for ev in self.store.watch_prefix(keys.TASKS, start_revision=rev + 1):
            if ev.value is not None:
                await self._maybe_run(ev.key, ev.value, ev.revision)

    async def _maybe_run(self, key: str, value: bytes, rev: int) -> None:
        task = decode(Task, key, value, [])
        if task is None or task.node not in self.hosts or task.state is not TaskState.QUEUED:
            return
        running = task.model_copy(update={"state": TaskState.RUNNING, "started_at": time.time()})
        try:
            if await self.store.claim_task(task, rev, running):
                await self._execute(running)
        except Exception as e:  # one task's failure must not end the runner
            log.warning("task %s (%s): %s", task.id, task.kind, e)

    async def _execute(self, task: Task) -> None:
        error: str | None = None
        vm = await self.store.vm(task.vmid) if task.vmid is not None else None
        if vm is None:
            error = f"VM {task.vmid} does not exist"
        elif task.kind == "vm.create":
            await self.store.put_runtime(vm.vmid, VMRuntime(node=task.node,
                                                            status=VMStatus.STOPPED))
        elif task.kind == "vm.delete":
            if not await self.store.delete_vm(vm):
                error = f"VM {vm.vmid}: placement changed; not deleted"
        else:
            error = "simulated host: runs no guests"
        done = task.model_copy(update={
            "state": TaskState.ERROR if error else TaskState.OK, "error": error,
            "progress": 1.0, "ended_at": time.time()})
        await self.store.put_task(done.with_log(f"error: {error}" if error else "done"))
        self.done += 1


async def run(endpoints: list[str], names: list[str], ttl: int, usage_interval: float,
              ready_file: Path | None) -> None:
    async with Store(endpoints) as store:
        hosts = [SimulatedHost(store, n, ttl, usage_interval) for n in names]
        for host in hosts:
            await host.register()
        runner = SimulatedTaskRunner(store, set(names))
        jobs = [asyncio.create_task(runner.run(), name="tasks")]
        for i, host in enumerate(hosts):
            jobs.append(asyncio.create_task(host.keep_alive()))
            jobs.append(asyncio.create_task(
                host.publish_usage(usage_interval * i / max(len(hosts), 1))))
        if ready_file is not None:
            ready_file.write_text(f"{len(hosts)}\n")
        log.info("%d simulated hosts registered", len(hosts))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([*jobs, waiter], return_when=asyncio.FIRST_COMPLETED)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        for host in hosts:  # leave as a stopped agent with no guests does
            with contextlib.suppress(Exception):
                await host.lease.revoke()
        log.info("simulated hosts stopped (%d tasks finished)", runner.done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd", required=True, help="etcd client URLs, comma separated")
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--prefix", default="sim-host")
    parser.add_argument("--lease-ttl", type=int, default=9)
    parser.add_argument("--usage-interval", type=float, default=5.0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    if not 1 <= args.hosts <= 1000:
        parser.error("--hosts: between 1 and 1000")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run(args.etcd.split(","), host_names(args.hosts, args.prefix), args.lease_ttl,
                    args.usage_interval, args.ready_file))


if __name__ == "__main__":
    main()
