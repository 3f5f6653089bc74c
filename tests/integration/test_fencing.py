"""Fencing against real processes: the lab watchdog and a real QEMU, the mux and a fake
device, the agent's timeout check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qemu_fixtures import qemu_run_dir, tiny_images

from corral.cluster.models import VMConfig
from corral.fencing.client import WatchdogClient
from corral.fencing.mux import MAGIC_CLOSE, WatchdogMux
from corral.fencing.protocol import bind
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir", "tiny_images"]  # fixtures used by name

TIMEOUT = 1.5  # the watchdog's, short to keep the tests quick


def wait_for(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until check() held; fails after timeout."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not done after {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def qemu_pid(qemu_run_dir: Path, tiny_images: Path) -> Iterator[int]:
    import asyncio

    driver = QemuDriver(qemu_run_dir, tiny_images, "tcg")
    config = VMConfig.model_validate({"vmid": 100, "name": "fenced", "memory_mb": 96,
                                      "cores": 1})
    yield asyncio.run(driver.start(config, []))


@pytest.fixture
def labdog(qemu_run_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    sock = qemu_run_dir / "wd.sock"
    log = qemu_run_dir / "labdog.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.fencing.labdog", "--node", "n1", "--run-dir",
             str(qemu_run_dir), "--socket", str(sock), "--timeout", str(TIMEOUT)],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        wait_for(sock.exists, 10)
        yield proc, sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_fed_watchdog_spares_and_unfed_one_kills_the_hosts_qemu(
    labdog: tuple[subprocess.Popen[str], Path], qemu_pid: int, qemu_run_dir: Path
) -> None:
    _, sock = labdog
    client = WatchdogClient(sock, "agent-n1")
    for _ in range(int(2 * TIMEOUT / 0.3)):  # fed for twice the timeout
        assert client.feed()
        time.sleep(0.3)
    assert alive(qemu_pid)
    fenced_after = wait_for(lambda: not alive(qemu_pid), TIMEOUT + 2)
    assert fenced_after >= TIMEOUT - 0.35  # not before the timeout (less the last feed's age)
    print(f"fenced {fenced_after:.2f}s after the last feed (timeout {TIMEOUT}s)")
    wait_for(lambda: "FENCED" in (qemu_run_dir / "labdog.log").read_text(), 5)
    assert "VM 100" in (qemu_run_dir / "labdog.log").read_text()


def test_unarmed_or_disarmed_watchdog_never_fires(
    labdog: tuple[subprocess.Popen[str], Path], qemu_pid: int
) -> None:
    _, sock = labdog
    time.sleep(TIMEOUT + 0.5)  # never fed: never armed
    assert alive(qemu_pid)
    client = WatchdogClient(sock, "agent-n1")
    client.feed()
    client.disarm()  # a clean agent stop
    time.sleep(TIMEOUT + 0.5)
    assert alive(qemu_pid)


def test_frozen_feeder_is_fenced(labdog: tuple[subprocess.Popen[str], Path],
                                 qemu_pid: int) -> None:
    _, sock = labdog
    code = ("import time, pathlib\nfrom corral.fencing.client import WatchdogClient\n"
            f"c = WatchdogClient(pathlib.Path({str(sock)!r}), 'agent-n1')\n"
            "for _ in range(300):\n    c.feed(); time.sleep(0.2)\n")
    feeder = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(TIMEOUT + 1.0)  # it imports, then feeds
        assert alive(qemu_pid)
        os.kill(feeder.pid, signal.SIGSTOP)
        fenced_after = wait_for(lambda: not alive(qemu_pid), TIMEOUT + 2)
        assert alive(feeder.pid)  # the feeder is frozen, not dead
        print(f"fenced {fenced_after:.2f}s after SIGSTOP (timeout {TIMEOUT}s)")
    finally:
        os.kill(feeder.pid, signal.SIGCONT)
        feeder.kill()
        feeder.wait(5)


# --- the mux against a fake device ----------------------------------------------------------


@pytest.fixture
def mux(tmp_path: Path) -> Iterator[tuple[WatchdogMux, Path, WatchdogClient]]:
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    sock = bind(tmp_path / "mux.sock")
    m = WatchdogMux(device, sock, client_timeout=0.6, interval=0.1)
    thread = threading.Thread(target=m.run, daemon=True)
    thread.start()
    try:
        yield m, device, WatchdogClient(tmp_path / "mux.sock", "agent")
    finally:
        m.stopping = True
        thread.join(5)
        sock.close()


def grows(device: Path, seconds: float = 0.5) -> bool:
    before = device.stat().st_size
    time.sleep(seconds)
    return device.stat().st_size > before


def test_mux_feeds_the_device_only_while_every_client_is_fed(
    mux: tuple[WatchdogMux, Path, WatchdogClient]
) -> None:
    m, device, client = mux
    assert grows(device)  # no client armed: the mux's own liveness is enough
    other = WatchdogClient(client.path, "other")
    for _ in range(4):
        client.feed()
        other.feed()
        time.sleep(0.2)
    assert grows(device, 0.3)
    for _ in range(6):  # `other` goes silent: the device is left to fire
        client.feed()
        time.sleep(0.2)
    assert not grows(device)
    other.disarm()
    client.feed()
    time.sleep(0.3)
    assert grows(device, 0.3)
    client.feed()
    m.stopping = True
    wait_for(lambda: m.fd < 0, 5)
    assert device.read_bytes()[-1:] == MAGIC_CLOSE  # clean stop: magic close


def test_mux_stopping_with_a_starving_client_leaves_the_device_armed(
    mux: tuple[WatchdogMux, Path, WatchdogClient]
) -> None:
    m, device, client = mux
    client.feed()
    time.sleep(1.0)
    m.stopping = True
    wait_for(lambda: m.fd < 0, 5)
    assert MAGIC_CLOSE not in device.read_bytes()


# --- the agent's invariant -------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["10", "12"])
def test_agent_refuses_a_watchdog_slower_than_its_lease(tmp_path: Path, timeout: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "corral.cli.main", "agent", "run", "--node", "n1",
         "--data-dir", str(tmp_path), "--etcd", "http://127.0.0.1:9", "--accel", "tcg",
         "--lease-ttl", "10", "--watchdog-socket", str(tmp_path / "wd.sock"),
         "--watchdog-timeout", timeout],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "watchdog timeout" in out.stderr and "lease TTL (10s)" in out.stderr
