"""Usage samples of the host, from psutil."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import psutil

from corral.cluster.models import NodeInfo, NodeUsage

MB = 1024 * 1024


def static_info(name: str, address: str, agent_url: str, accel: str,
                versions: dict[str, str], lease_ttl: float, watchdog_timeout: float,
                renew_interval: float | None = None) -> NodeInfo:
    return NodeInfo(
        name=name,
        cpus=psutil.cpu_count() or 1,
        memory_mb=psutil.virtual_memory().total // MB,
        address=address,
        agent_url=agent_url,
        accel="kvm" if accel == "kvm" else "tcg",
        lease_ttl=lease_ttl,
        watchdog_timeout=watchdog_timeout,
        renew_interval=renew_interval,
        versions=versions,
    )


def sample(vms_running: int, data_dir: Path | None = None) -> NodeUsage:
    mem = psutil.virtual_memory()
    disk = shutil.disk_usage(data_dir) if data_dir is not None else None
    return NodeUsage(
        # interval=None: the share since the previous call, without blocking.
        cpu=psutil.cpu_percent(interval=None) / 100.0,
        memory_used_mb=(mem.total - mem.available) // MB,
        memory_total_mb=mem.total // MB,
        load1=os.getloadavg()[0],
        vms_running=vms_running,
        disk_used_mb=disk.used // MB if disk else None,
        disk_total_mb=disk.total // MB if disk else None,
    )
