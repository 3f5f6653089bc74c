"""Choose KVM or TCG by booting the tiny guest, not by the mere presence of /dev/kvm.

Under nested virtualisation /dev/kvm opens fine yet a KVM guest can crawl; only a boot that
reaches its first heartbeat in time proves KVM usable. The answer holds until the host reboots.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

from corral.cluster.models import VMConfig
from corral.qemu import process
from corral.qemu.cmdline import build_command
from corral.qemu.driver import tiny_kernel_file
from corral.qemu.paths import VMPaths

Accel = Literal["kvm", "tcg"]
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MACHINE_DIR = Path("/run/corral")
PROBE_IMAGE = "tiny"
PROBE_VMID = 100
HEARTBEAT = b"corral-heartbeat 1"


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _kvm_openable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _cached(cache: Path, boot_id: str) -> Accel | None:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    accel = data.get("accel")
    if boot_id and data.get("boot_id") == boot_id and accel in ("kvm", "tcg"):
        return "kvm" if accel == "kvm" else "tcg"
    return None


def kvm_boots(images_dir: Path, probe_dir: Path, timeout: float) -> bool:
    """Boot the tiny guest under KVM; True if its first heartbeat comes within `timeout`."""
    probe_dir.mkdir(parents=True, exist_ok=True)
    paths = VMPaths(probe_dir, PROBE_VMID)
    config = VMConfig(vmid=PROBE_VMID, name="corral-accel-probe", memory_mb=128, cores=1)
    cmd = build_command(
        config, paths, "kvm", [], images_dir,
        kernel_file=tiny_kernel_file(images_dir, PROBE_IMAGE),
    )  # fmt: skip
    process.remove_control_files(paths)
    paths.serial_log.write_bytes(b"")
    deadline = time.monotonic() + timeout
    try:
        launched = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            timeout=timeout,
            check=False,
        )
        if launched.returncode != 0:
            return False
        while time.monotonic() < deadline:
            if HEARTBEAT in paths.serial_log.read_bytes():
                return True
            time.sleep(0.05)
        return False
    except subprocess.TimeoutExpired:
        return False
    finally:
        pid = process.read_pidfile(paths.pidfile)
        if pid is not None and process.is_qemu_of(pid, paths):
            process.kill(pid)
            for _ in range(100):
                if not process.is_qemu_of(pid, paths):
                    break
                time.sleep(0.05)
        shutil.rmtree(probe_dir, ignore_errors=True)


def probe_accel(images_dir: Path, run_dir: Path, timeout: float = 5.0,
                machine_dir: Path = MACHINE_DIR) -> Accel:
    """kvm if a KVM guest really boots on this host, else tcg; probed once per host boot.

    The answer is a fact of the machine: it is kept in `machine_dir` (a tmpfs, so a reboot
    forgets it) for every agent on the machine, lab hosts included, and probed by one of them
    at a time. Needs the tiny image in `images_dir`. Blocking: async callers use
    asyncio.to_thread.
    """
    boot_id = _boot_id()
    try:
        machine_dir.mkdir(parents=True, exist_ok=True)
        with (machine_dir / "accel.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            accel = _probe_once(images_dir, run_dir, timeout, boot_id, machine_dir)
    except PermissionError:
        accel = _probe_once(images_dir, run_dir, timeout, boot_id, run_dir)
    return accel


def _probe_once(images_dir: Path, run_dir: Path, timeout: float, boot_id: str,
                cache_dir: Path) -> Accel:
    cache = cache_dir / "accel.json"
    cached = _cached(cache, boot_id)
    if cached is not None:
        return cached
    if not (images_dir / PROBE_IMAGE).is_dir():
        raise FileNotFoundError(f"the accel probe needs the tiny image in {images_dir}")
    accel: Accel = "tcg"
    if _kvm_openable() and kvm_boots(images_dir, run_dir / "probe", timeout):
        accel = "kvm"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"boot_id": boot_id, "accel": accel}) + "\n")
    tmp.replace(cache)
    return accel
