"""The transfer of a live migration, on the source: disk mirrors, then RAM.

Ends with the guest paused on both hosts (source: RAM sent; target: held by `stop`) and the
target's disks consistent, which is the only state in which ownership may change hands.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from corral.agent.context import TaskFailed
from corral.migration import progress, qmp, record
from corral.migration.record import MigrationRecord, Stats
from corral.migration.secure import sender_credentials
from corral.migration.session import Migration
from corral.qemu import tls

POLL = 0.02  # query-migrate interval: completion is noticed within it (it adds to downtime)
REPORT_EVERY = 1.0  # seconds between progress writes to etcd
TARGET_CHECK_EVERY = 1.0


class Stall:
    """Raises when no byte moved for `limit` seconds."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last = -1
        self.since = time.monotonic()

    def check(self, moved: int) -> None:
        now = time.monotonic()
        if moved > self.last:
            self.last, self.since = moved, now
        elif now - self.since > self.limit:
            raise TaskFailed(f"the migration stalled: nothing moved for {self.limit:.0f}s")


async def transfer(m: Migration, ready: MigrationRecord, watch: record.Watch) -> dict[str, Any]:
    driver, vmid = m.ctx.driver, m.vmid
    creds_dir = sender_credentials(m.ctx.qemu_tls, ready)
    secure = (qmp.Tls(await tls.ensure_creds(driver, vmid, "client", creds_dir), ready.target)
              if creds_dir is not None else None)
    stall = Stall(m.params.stall_timeout)
    last_report = last_check = 0.0
    stats = published = Stats()

    async def sample(reply: dict[str, Any], jobs: list[dict[str, Any]], base: float,
                     span: float) -> None:
        nonlocal stats, published, last_report, last_check
        stats = progress.stats(reply, jobs, qmp.MIRROR_JOB, m.elapsed(), stats)
        stall.check(stats.transferred)
        now = time.monotonic()
        if now - last_check > TARGET_CHECK_EVERY:
            last_check = now
            await m.check_target(watch)
        if now - last_report > REPORT_EVERY:
            last_report = now
            stats = progress.with_rate(stats, published)
            published = stats
            await m.publish(stats, base + span * progress.fraction(stats),
                            progress.describe(stats))

    if ready.local_disks:
        await qmp.start_mirrors(driver, vmid, ready.nbd, m.params.bwlimit_mbps, secure)
        await m.report(0.05, f"mirroring {len(ready.nbd)} local disk(s) to {ready.target}")
        while True:
            jobs = await qmp.block_jobs(driver, vmid)
            if (why := qmp.failed_mirror(jobs, len(ready.nbd))) is not None:
                raise TaskFailed(why)
            if qmp.mirrors_ready(jobs, len(ready.nbd)):
                break
            await sample({}, jobs, 0.05, 0.45)
            await asyncio.sleep(POLL * 4)
    if ready.migrate_uri is None:
        raise TaskFailed("the target published no migration address")
    await qmp.start_ram(driver, vmid, ready.migrate_uri, m.params.bwlimit_mbps, secure)
    m.ram_started = True
    await m.report(0.5, f"sending RAM to {ready.migrate_uri}")
    while True:
        reply: dict[str, Any] = await driver.qmp(vmid, "query-migrate")
        status = reply.get("status")
        jobs = await qmp.block_jobs(driver, vmid) if ready.local_disks else []
        if status == "completed":
            completed_at = time.time()
            stats = progress.stats(reply, jobs, qmp.MIRROR_JOB, m.elapsed(), stats)
            stats = progress.with_rate(stats, Stats())  # the average over the whole move
            break
        if status in ("failed", "cancelled"):
            raise TaskFailed(f"QEMU migration {status}: {reply.get('error-desc', 'no reason')}")
        if ready.local_disks and (why := qmp.failed_mirror(jobs, len(ready.nbd))) is not None:
            raise TaskFailed(why)
        await sample(reply, jobs, 0.5, 0.45)
        await asyncio.sleep(POLL)
    # The source is paused now. With write-blocking mirrors every write already reached the
    # target; ending the jobs without a pivot leaves the target's copy complete.
    if ready.local_disks:
        await qmp.finish_mirrors(driver, vmid, force=False)
    m.stats = stats
    await m.report(0.95, f"RAM sent ({progress.describe(stats)}); switching over")
    return {
        "downtime_ms": int(reply.get("downtime", 0)),
        "qemu_total_ms": int(reply.get("total-time", 0)),
        "completed_at": completed_at,
        "tls": secure is not None,
    }
