"""The QMP steps of a live migration, on the source and on the target QEMU.

Node and job names carry a fixed prefix so cleanup finds exactly what a migration added and
never touches the VM's own disks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from corral.migration.record import NbdEndpoint
from corral.qemu.cmdline import disk_node_name
from corral.qemu.driver import QemuDriver, QemuError

NBD_NODE = "mig-nbd"  # source: NBD client node writing into the target's export
MIRROR_JOB = "mig-mirror"  # source: the mirror job of one disk
EXPORT = "mig-export"  # target: the block export of one disk
MIB = 1024 * 1024
# QEMU's default bandwidth cap (32 MiB/s on older versions) would throttle every migration.
UNLIMITED_BPS = 100 * 1024 * MIB


# QEMU run states a migration leaves behind. A source cut short around its switchover: the
# guest went out and may run again only if it went on nowhere else (migration/recovery.py).
INTERRUPTED_STATES = ("postmigrate", "finish-migrate")
# A source whose guest was handed on, a target that never got its stream: neither may be
# resumed, `cont` would run the first from the past (agent/actions.py).
LEFTOVER_STATES = ("postmigrate", "inmigrate")


@dataclass(frozen=True)
class Tls:
    """How the source reaches the target over TLS: its credentials object, and the name the
    target's certificate must carry (the target host's name)."""

    creds: str
    hostname: str


def nbd_node(disk: int) -> str:
    return f"{NBD_NODE}{disk}"


def mirror_job(disk: int) -> str:
    return f"{MIRROR_JOB}{disk}"


# --- target --------------------------------------------------------------------------------


async def hold_after_incoming(driver: QemuDriver, vmid: int) -> None:
    """Keep the guest paused when the incoming migration completes.

    `stop` on a QEMU waiting for a migration clears its autostart (the effect of -S): the
    guest must not run on the target before its disks are consistent and the placement names
    the target.
    """
    await driver.qmp(vmid, "stop")


async def export_disks(driver: QemuDriver, vmid: int, disks: list[int], host: str,
                       port: int, tls_creds: str | None) -> list[NbdEndpoint]:
    server: dict[str, Any] = {"addr": {"type": "inet", "data": {"host": host,
                                                                 "port": str(port)}}}
    if tls_creds:
        server["tls-creds"] = tls_creds
    await driver.qmp(vmid, "nbd-server-start", server)
    out = []
    for i in disks:
        name = disk_node_name(i)
        await driver.qmp(vmid, "block-export-add", {
            "type": "nbd", "id": f"{EXPORT}{i}", "node-name": name, "name": name,
            "writable": True,
        })
        out.append(NbdEndpoint(disk=i, host=host, port=port, export=name))
    return out


async def unexport_disks(driver: QemuDriver, vmid: int, timeout: float = 10.0) -> None:
    """Remove the exports and stop the NBD server: the guest's own disk device only gets
    exclusive write access once no export holds the disk (QEMU applies it on `cont`)."""
    exports = await driver.qmp(vmid, "query-block-exports")
    for exp in exports:
        if str(exp.get("id", "")).startswith(EXPORT):
            with contextlib.suppress(QemuError):
                await driver.qmp(vmid, "block-export-del", {"id": exp["id"], "mode": "hard"})
    deadline = time.monotonic() + timeout
    while any(str(e.get("id", "")).startswith(EXPORT)
              for e in await driver.qmp(vmid, "query-block-exports")):
        if time.monotonic() > deadline:
            raise QemuError(f"VM {vmid}: NBD exports did not go away")
        await asyncio.sleep(0.02)
    with contextlib.suppress(QemuError):
        await driver.qmp(vmid, "nbd-server-stop")


# --- source --------------------------------------------------------------------------------


async def start_mirrors(driver: QemuDriver, vmid: int, endpoints: list[NbdEndpoint],
                        bwlimit_mbps: int | None, tls: Tls | None) -> None:
    """Mirror each local disk into the target's export of it.

    write-blocking: once a job is ready, every guest write completes only after it reached
    the target too, so the copy cannot fall behind a busy guest during the RAM transfer.
    """
    for ep in endpoints:
        node: dict[str, Any] = {
            "driver": "nbd", "node-name": nbd_node(ep.disk), "export": ep.export,
            "server": {"type": "inet", "host": ep.host, "port": str(ep.port)},
        }
        if tls:
            node |= {"tls-creds": tls.creds, "tls-hostname": tls.hostname}
        await driver.qmp(vmid, "blockdev-add", node)
        args: dict[str, Any] = {
            "job-id": mirror_job(ep.disk), "device": disk_node_name(ep.disk),
            "target": nbd_node(ep.disk), "sync": "full", "copy-mode": "write-blocking",
        }
        if bwlimit_mbps:
            args["speed"] = bwlimit_mbps * MIB
        await driver.qmp(vmid, "blockdev-mirror", args)


async def block_jobs(driver: QemuDriver, vmid: int) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = await driver.qmp(vmid, "query-block-jobs")
    return [j for j in jobs if str(j.get("device", "")).startswith(MIRROR_JOB)]


def mirrors_ready(jobs: list[dict[str, Any]], expected: int) -> bool:
    return len(jobs) == expected and all(j.get("ready") for j in jobs)


def failed_mirror(jobs: list[dict[str, Any]], expected: int) -> str | None:
    """Why the mirror jobs cannot carry on, or None."""
    if len(jobs) < expected:
        return "a disk mirror job ended before the migration did"
    for j in jobs:
        if j.get("status") in ("aborting", "concluded", "null") or j.get("io-status", "ok") != "ok":
            return f"disk mirror {j.get('device')} failed ({j.get('status')}, {j.get('io-status')})"
    return None


async def finish_mirrors(driver: QemuDriver, vmid: int, force: bool,
                         timeout: float = 30.0) -> None:
    """End the mirror jobs and drop the NBD client nodes.

    Cancelling a ready mirror job (force=False) completes it without switching the source
    over: the target then holds a consistent copy. force=True just stops it (rollback).
    """
    for job in await block_jobs(driver, vmid):
        with contextlib.suppress(QemuError):
            await driver.qmp(vmid, "block-job-cancel", {"device": job["device"], "force": force})
    deadline = time.monotonic() + timeout
    while await block_jobs(driver, vmid):
        if time.monotonic() > deadline:
            raise QemuError(f"VM {vmid}: disk mirror jobs did not finish")
        await asyncio.sleep(0.02)
    for node in await driver.qmp(vmid, "query-named-block-nodes", {"flat": True}):
        name = str(node.get("node-name", ""))
        if name.startswith(NBD_NODE):
            with contextlib.suppress(QemuError):
                await driver.qmp(vmid, "blockdev-del", {"node-name": name})


async def start_ram(driver: QemuDriver, vmid: int, uri: str, bwlimit_mbps: int | None,
                    tls: Tls | None) -> None:
    bps = bwlimit_mbps * MIB if bwlimit_mbps else UNLIMITED_BPS
    parameters: dict[str, Any] = {"max-bandwidth": bps}
    if tls:
        parameters |= {"tls-creds": tls.creds, "tls-hostname": tls.hostname}
    await driver.qmp(vmid, "migrate-set-parameters", parameters)
    await driver.qmp(vmid, "migrate", {"uri": uri})


async def cancel_ram(driver: QemuDriver, vmid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(QemuError):
        await driver.qmp(vmid, "migrate_cancel")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await driver.qmp(vmid, "query-migrate")
        if reply.get("status") not in ("active", "setup", "cancelling", "pre-switchover",
                                       "device", "wait-unplug"):
            return
        await asyncio.sleep(0.05)
