from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from qemu_fixtures import last_heartbeat, qemu_run_dir, run, tiny_images, wait_console

from corral.cluster.models import Disk, VMConfig, VMStatus
from corral.qemu.driver import AlreadyRunning, NotRunning, QemuDriver, QemuError

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir", "tiny_images"]  # fixtures used by name

VMID = 100


def vm(**kw: object) -> VMConfig:
    base: dict[str, object] = {"vmid": VMID, "name": "tiny", "memory_mb": 128, "cores": 1}
    return VMConfig.model_validate(base | kw)


@pytest.fixture
def driver(qemu_run_dir: Path, tiny_images: Path) -> QemuDriver:
    return QemuDriver(qemu_run_dir, tiny_images, "tcg")


async def test_heartbeat_pause_resume(driver: QemuDriver) -> None:
    started = time.monotonic()
    pid = await driver.start(vm(), [])
    assert driver.pid(VMID) == pid
    await wait_console(driver, VMID, rb"corral-heartbeat 1\r?\n")
    print(f"first heartbeat after {time.monotonic() - started:.2f} s")
    assert await driver.status(VMID) == VMStatus.RUNNING

    await driver.pause(VMID)
    assert await driver.status(VMID) == VMStatus.PAUSED
    frozen = last_heartbeat(driver.read_console(VMID)[0])
    await asyncio.sleep(1.5)
    assert last_heartbeat(driver.read_console(VMID)[0]) == frozen

    await driver.resume(VMID)
    assert await driver.status(VMID) == VMStatus.RUNNING
    await wait_console(driver, VMID, rb"corral-heartbeat %d\r?\n" % (frozen + 1), timeout=5)


async def test_console_offsets(driver: QemuDriver) -> None:
    await driver.start(vm(), [])
    first = await wait_console(driver, VMID, rb"corral-heartbeat 2\r?\n")
    head, offset = driver.read_console(VMID, 0, limit=5)
    assert head == first[:5] and offset == 5
    rest, end = driver.read_console(VMID, offset)
    assert (head + rest).startswith(first) and end == 5 + len(rest)
    assert driver.read_console(VMID, end + 10_000)[0].startswith(first)  # truncated log


async def test_acpi_shutdown(driver: QemuDriver) -> None:
    await driver.start(vm(), [])
    await wait_console(driver, VMID, rb"corral-heartbeat 1\r?\n")
    assert await driver.shutdown(VMID, timeout=10) is True
    assert driver.pid(VMID) is None
    assert driver.running() == {}
    assert await driver.status(VMID) == VMStatus.STOPPED
    console, _ = driver.read_console(VMID)
    assert b"corral-guest: power button, powering off" in console


async def test_shutdown_falls_back_to_hard_stop(driver: QemuDriver) -> None:
    # Pressed while the guest is still in firmware, the button goes unnoticed.
    pid = await driver.start(vm(), [])
    assert await driver.shutdown(VMID, timeout=0.01) is False
    assert driver.pid(VMID) is None
    assert not Path(f"/proc/{pid}/cmdline").exists() or pid not in driver.running().values()
    assert not driver.paths(VMID).pidfile.exists()


async def test_adoption_and_double_start(driver: QemuDriver, qemu_run_dir: Path) -> None:
    pid = await driver.start(vm(), [])
    stale = driver.paths(101)
    stale.pidfile.write_text(f"{os.getpid()}\r?\n")  # a live pid that is not QEMU
    adopter = QemuDriver(qemu_run_dir, driver.images_dir, "tcg")
    assert adopter.running() == {VMID: pid}
    assert not stale.pidfile.exists()
    assert await adopter.status(VMID) == VMStatus.RUNNING
    with pytest.raises(AlreadyRunning):
        await adopter.start(vm(), [])
    await adopter.stop(VMID)
    assert driver.running() == {}


async def test_reset_reboots_guest(driver: QemuDriver) -> None:
    await driver.start(vm(), [])
    await wait_console(driver, VMID, rb"corral-heartbeat 1\r?\n")
    await driver.reset(VMID)
    await wait_console(driver, VMID, rb"(?s)corral-heartbeat 1\r?\n.*corral-heartbeat 1\r?\n")


async def test_qcow2_disk_and_diskmark(driver: QemuDriver, qemu_run_dir: Path) -> None:
    disk = qemu_run_dir / "vm-100-disk-0.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M")
    config = vm(disks=[Disk(volume="local:vm-100-disk-0.qcow2", size_mb=64)])
    await driver.start(config, [disk], extra_append="corral.diskmark=1")
    await wait_console(driver, VMID, rb"(?s)corral-disk: present.*corral-heartbeat 2\r?\n")
    assert await driver.shutdown(VMID, timeout=10) is True
    raw = qemu_run_dir / "disk.raw"
    await run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw))
    mark = raw.read_bytes()[:512].rstrip(b"\0").strip()
    assert int(mark) >= 1


async def test_qemu_errors_surface(driver: QemuDriver, qemu_run_dir: Path) -> None:
    bad = qemu_run_dir / "bad.qcow2"
    bad.write_bytes(b"not a qcow2 image" * 100)
    config = vm(disks=[Disk(volume="local:bad.qcow2", size_mb=1)])
    with pytest.raises(QemuError, match="qcow2"):
        await driver.start(config, [bad])
    assert driver.running() == {}


AGENT = """
import asyncio, sys, time
from pathlib import Path
from corral.cluster.models import VMConfig
from corral.qemu.driver import QemuDriver

driver = QemuDriver(Path(sys.argv[1]), Path(sys.argv[2]), "tcg")
config = VMConfig(vmid=100, name="tiny", memory_mb=128, cores=1)
print(asyncio.run(driver.start(config, [])), flush=True)
time.sleep(60)
"""


async def test_vm_outlives_killed_agent(driver: QemuDriver, qemu_run_dir: Path) -> None:
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, str(qemu_run_dir), str(driver.images_dir),
        stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert agent.stdout is not None
    pid = int(await asyncio.wait_for(agent.stdout.readline(), 20))
    os.killpg(agent.pid, signal.SIGKILL)  # the agent and everything in its process group
    await agent.wait()
    assert driver.running() == {VMID: pid}
    await wait_console(driver, VMID, rb"corral-heartbeat 2\r?\n")
    assert await driver.status(VMID) == VMStatus.RUNNING


async def test_incoming_vm_waits_and_stopped_vm_refuses(driver: QemuDriver) -> None:
    assert await driver.status(VMID) == VMStatus.STOPPED
    with pytest.raises(NotRunning):
        await driver.pause(VMID)
    await driver.start(vm(), [], incoming="defer")
    assert await driver.status(VMID) == VMStatus.STARTING
    await driver.stop(VMID)
    assert await driver.status(VMID) == VMStatus.STOPPED


class Refused(Exception):
    pass


async def test_guard_is_asked_right_before_launch_and_cont(driver: QemuDriver) -> None:
    """A guard that refuses (the VM moved, the lease went) stops the launch and the resume:
    no QEMU comes up, a paused guest stays paused."""
    asked: list[str] = []

    async def refuse() -> None:
        asked.append("asked")
        raise Refused("not owned")

    with pytest.raises(Refused):
        await driver.start(vm(), [], guard=refuse)
    assert asked == ["asked"] and driver.pid(VMID) is None and driver.running() == {}

    await driver.start(vm(), [])
    await wait_console(driver, VMID, rb"corral-heartbeat 1\r?\n")
    await driver.pause(VMID)
    with pytest.raises(Refused):
        await driver.resume(VMID, guard=refuse)
    assert asked == ["asked", "asked"]
    assert await driver.status(VMID) == VMStatus.PAUSED
    frozen = last_heartbeat(driver.read_console(VMID)[0])
    await asyncio.sleep(1.5)
    assert last_heartbeat(driver.read_console(VMID)[0]) == frozen
