"""The transfer of a cold migration, on the source: each local volume is written into the
target's fresh copy through NBD (qemu-nbd on the target, qemu-img convert here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from corral.agent.context import TaskFailed, disk_paths
from corral.migration import record
from corral.migration.net import nbd_uri
from corral.migration.record import MigrationRecord, NbdEndpoint, Stats
from corral.migration.secure import sender_credentials
from corral.migration.session import Migration
from corral.qemu import tls
from corral.storage.volumes import volume_format

MIB = 1024 * 1024


async def copy_volume(src: str, fmt: str, ep: NbdEndpoint, target: str,
                      creds_dir: Path | None) -> None:
    # -n: the target volume exists (the target made it); it is fresh, hence all zeroes.
    if creds_dir is None:
        dest = ["-O", "raw", nbd_uri(ep.host, ep.port, ep.export)]
    else:  # the target's name is checked against its certificate
        dest = [f"--object={tls.creds_option('client', creds_dir)}", "--target-image-opts",
                f"driver=raw,file.driver=nbd,file.host={ep.host},file.port={ep.port},"
                f"file.export={ep.export},file.tls-creds={tls.CREDS_ID['client']},"
                f"file.tls-hostname={target}"]
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "convert", "-n", "--target-is-zero", "-f", fmt, src, *dest,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise TaskFailed(f"copying {src} failed: {err.decode(errors='replace').strip()}")


async def transfer(m: Migration, ready: MigrationRecord, watch: record.Watch) -> dict[str, Any]:
    paths = await disk_paths(m.ctx, m.vm)
    creds_dir = sender_credentials(m.ctx.qemu_tls, ready)
    total = sum(m.vm.config.disks[ep.disk].size_mb * MIB for ep in ready.nbd)
    done = 0
    for n, ep in enumerate(ready.nbd, 1):
        path = paths[ep.disk]
        await m.report(0.05 + 0.85 * done / max(total, 1),
                       f"copying {m.vm.config.disks[ep.disk].volume} to {ready.target}")
        await copy_volume(str(path), volume_format(path), ep, ready.target, creds_dir)
        done += m.vm.config.disks[ep.disk].size_mb * MIB
        stats = Stats(disk_total=total, disk_transferred=done, elapsed=m.elapsed(),
                      rate=done / max(m.elapsed(), 1e-3))
        await m.publish(stats, 0.05 + 0.85 * done / max(total, 1),
                        f"copied {n}/{len(ready.nbd)} volume(s)")
        await m.check_target(watch)
    return {"tls": creds_dir is not None}
