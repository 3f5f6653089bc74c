"""QMP under load: a VM with an active block mirror, a storm of block-job and migration events,
and many short driver exchanges at once. Shared by tests/integration/test_qmp_stress.py and
bench/qmp_stress.py.

The events come from a second QMP monitor of the same QEMU (QEMU broadcasts every event to
all its monitors): it pauses and resumes the mirror job, stops and resumes the guest, and
starts and cancels a migration, so the driver's monitor sees events at every moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from corral.cluster.models import Disk, VMConfig, VMStatus
from corral.qemu.driver import QemuDriver

JOB = "stress-mirror"
TARGET_NODE = "stress-target"
DISK_MB = 32
BURST = 2  # job pause/resume pairs sent at once


class SideMonitorDriver(QemuDriver):
    """A driver whose QEMUs get a second QMP monitor, for the event storm."""

    def side_socket(self, vmid: int) -> Path:
        return self.run_dir / f"{vmid}.side.sock"

    def command(self, config: VMConfig, disk_paths: list[Path], incoming: str | None = None,
                extra_append: str = "") -> list[str]:
        side = f"unix:{self.side_socket(config.vmid)},server=on,wait=off"
        return [*super().command(config, disk_paths, incoming, extra_append), "-qmp", side]


class SideSession:
    """One long QMP session on the second monitor; counts the events it sees."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events = 0

    @classmethod
    async def open(cls, socket: Path) -> SideSession:
        reader, writer = await asyncio.open_unix_connection(str(socket))
        session = cls(reader, writer)
        greeting = json.loads(await reader.readline())
        assert "QMP" in greeting, greeting  # nobody else talks to this monitor
        await session.call("qmp_capabilities")
        return session

    async def call(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        return (await self.burst([(command, arguments)]))[0]

    async def burst(self, commands: list[tuple[str, dict[str, Any] | None]]) -> list[Any]:
        """Send all `commands` at once (QEMU runs them in order), then read their replies:
        events come faster than with one round trip per command."""
        ids = [uuid.uuid4().hex for _ in commands]
        for msg_id, (command, arguments) in zip(ids, commands, strict=True):
            request: dict[str, Any] = {"execute": command, "id": msg_id}
            if arguments is not None:
                request["arguments"] = arguments
            self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        replies: dict[str, Any] = {}
        while len(replies) < len(ids):
            line = await asyncio.wait_for(self.reader.readline(), 10)
            assert line, "the side monitor closed"
            msg = json.loads(line)
            if "event" in msg:
                self.events += 1
            elif msg.get("id") in ids:
                if "error" in msg:
                    raise RuntimeError(f"{commands[ids.index(msg['id'])][0]}: {msg['error']}")
                replies[msg["id"]] = msg.get("return")
        return [replies[i] for i in ids]

    def close(self) -> None:
        self.writer.close()


async def start_mirrored_vm(driver: SideMonitorDriver, vmid: int, workdir: Path) -> SideSession:
    """Boot a tiny VM with one qcow2 disk mirrored into a local file; the job stays active."""
    disk, target = workdir / f"vm-{vmid}-disk-0.qcow2", workdir / f"vm-{vmid}-mirror.raw"
    for fmt, path in (("qcow2", disk), ("raw", target)):
        proc = await asyncio.create_subprocess_exec(
            "qemu-img", "create", "-q", "-f", fmt, str(path), f"{DISK_MB}M")
        assert await proc.wait() == 0, f"qemu-img create {path} failed"
    config = VMConfig(vmid=vmid, name=f"stress{vmid}", memory_mb=96, cores=1,
                      disks=[Disk(volume=f"local:{disk.name}", size_mb=DISK_MB)])
    await driver.start(config, [disk])
    side = await SideSession.open(driver.side_socket(vmid))
    await side.call("blockdev-add", {"driver": "raw", "node-name": TARGET_NODE,
                                     "file": {"driver": "file", "filename": str(target)}})
    await side.call("blockdev-mirror", {"job-id": JOB, "device": "disk0",
                                        "target": TARGET_NODE, "sync": "full"})
    # A migration that can never finish: it only serves its events (setup, active, passes,
    # cancelling, cancelled), and the guest keeps running here.
    await side.call("migrate-set-capabilities", {"capabilities": [
        {"capability": "pause-before-switchover", "state": True}]})
    await side.call("migrate-set-parameters", {"max-bandwidth": 64 * 1024})
    return side


async def storm(side: SideSession, stop: asyncio.Event) -> None:
    """Raise events until `stop`: job pause/resume, guest stop/cont, migration start/cancel."""
    cycle = 0
    while not stop.is_set():
        cycle += 1
        job = {"device": JOB}
        await side.burst([("block-job-pause", job), ("block-job-resume", job)] * BURST
                         + [("stop", None), ("cont", None)])
        if cycle % 16 == 0:
            await side.call("migrate", {"uri": "exec:cat >/dev/null"})
            await asyncio.sleep(0.01)
            await side.call("migrate_cancel")
            for _ in range(500):  # the next `migrate` needs this one gone
                status = (await side.call("query-migrate")).get("status")
                if status in ("cancelled", "failed", "completed", None):
                    break
                await asyncio.sleep(0.01)


@dataclass
class Figures:
    exchanges: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]

    def summary(self) -> str:
        rate = self.exchanges / self.seconds if self.seconds else 0.0
        return (f"{self.exchanges} exchanges in {self.seconds:.1f} s ({rate:.0f}/s), "
                f"{len(self.failures)} failures, p50 {self.percentile(50) * 1000:.2f} ms, "
                f"p99 {self.percentile(99) * 1000:.2f} ms, {self.events} events raised")


Kind = Literal["jobs", "migrate", "status"]
KINDS: tuple[Kind, ...] = ("jobs", "migrate", "status")


async def one_exchange(driver: QemuDriver, vmid: int, kind: Kind) -> str | None:
    """One driver call; what went wrong, or None. A reply of the wrong shape (another
    command's) counts as a failure too."""
    try:
        if kind == "jobs":
            jobs = await driver.qmp(vmid, "query-block-jobs")
            if not (isinstance(jobs, list) and any(j.get("device") == JOB for j in jobs)):
                return f"query-block-jobs answered {jobs!r:.200}"
        elif kind == "migrate":
            reply = await driver.qmp(vmid, "query-migrate")
            if not isinstance(reply, dict) or ("status" not in reply and reply):
                return f"query-migrate answered {reply!r:.200}"
        else:
            status = await driver.status(vmid)
            if status not in (VMStatus.RUNNING, VMStatus.PAUSED):
                return f"status {status.value}"
    except Exception as e:  # every kind of failure is what is being counted
        return f"{kind}: {type(e).__name__}: {e}"
    return None


async def hammer(driver: QemuDriver, vmid: int, side: SideSession, count: int,
                 time_limit: float) -> Figures:
    """`count` driver exchanges (fewer if `time_limit` runs out) while the storm blows."""
    figures = Figures()
    stop = asyncio.Event()
    storm_task = asyncio.create_task(storm(side, stop))
    started = time.monotonic()
    try:
        for n in range(count):
            if time.monotonic() - started > time_limit or storm_task.done():
                break
            t0 = time.monotonic()
            failure = await one_exchange(driver, vmid, KINDS[n % len(KINDS)])
            figures.latencies.append(time.monotonic() - t0)
            figures.exchanges += 1
            if failure is not None:
                figures.failures.append(failure)
    finally:
        figures.seconds = time.monotonic() - started
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(storm_task, 15)
    storm_task.result()  # the storm itself must not have failed
    figures.events = side.events
    return figures


@contextlib.asynccontextmanager
async def mirrored_vm(driver: SideMonitorDriver, vmid: int,
                      workdir: Path) -> AsyncIterator[SideSession]:
    side = await start_mirrored_vm(driver, vmid, workdir)
    try:
        yield side
    finally:
        side.close()
        await driver.stop(vmid)
