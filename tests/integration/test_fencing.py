"""Fencing against real processes: the lab watchdog and a real QEMU, the mux process and a
fake device, the arming protocol, what a real agent publishes, the agent's timeout check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agents import AgentProc
from agents import wait_for as async_wait_for
from qemu_fixtures import qemu_run_dir, tiny_images

from corral.cluster.models import NodeInfo, VMConfig
from corral.cluster.store import Store
from corral.fencing.client import WatchdogClient
from corral.host.processes import pid_alive
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


@pytest.fixture
def qemu_pid(qemu_run_dir: Path, tiny_images: Path) -> Iterator[int]:
    import asyncio

    driver = QemuDriver(qemu_run_dir, tiny_images, "tcg")
    config = VMConfig.model_validate({"vmid": 100, "name": "fenced", "memory_mb": 96,
                                      "cores": 1})
    yield asyncio.run(driver.start(config, []))


def start_labdog(run_dir: Path, sock: Path, timeout: float, log: Path
                 ) -> subprocess.Popen[str]:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "corral.fencing.labdog", "--node", "n1", "--run-dir",
             str(run_dir), "--socket", str(sock), "--timeout", str(timeout)],
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )


@pytest.fixture
def labdog(qemu_run_dir: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    sock = qemu_run_dir / "wd.sock"
    proc = start_labdog(qemu_run_dir, sock, TIMEOUT, qemu_run_dir / "labdog.log")
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
    assert pid_alive(qemu_pid)
    fenced_after = wait_for(lambda: not pid_alive(qemu_pid), TIMEOUT + 2)
    assert fenced_after >= TIMEOUT - 0.35  # not before the timeout (less the last feed's age)
    print(f"fenced {fenced_after:.2f}s after the last feed (timeout {TIMEOUT}s)")
    wait_for(lambda: "FENCED" in (qemu_run_dir / "labdog.log").read_text(), 5)
    assert "VM 100" in (qemu_run_dir / "labdog.log").read_text()


def test_unarmed_or_disarmed_watchdog_never_fires(
    labdog: tuple[subprocess.Popen[str], Path], qemu_pid: int
) -> None:
    _, sock = labdog
    time.sleep(TIMEOUT + 0.5)  # never fed: never armed
    assert pid_alive(qemu_pid)
    client = WatchdogClient(sock, "agent-n1")
    client.feed()
    client.disarm()  # a clean agent stop
    time.sleep(TIMEOUT + 0.5)
    assert pid_alive(qemu_pid)


def test_frozen_feeder_is_fenced(labdog: tuple[subprocess.Popen[str], Path],
                                 qemu_pid: int) -> None:
    _, sock = labdog
    code = ("import time, pathlib\nfrom corral.fencing.client import WatchdogClient\n"
            f"c = WatchdogClient(pathlib.Path({str(sock)!r}), 'agent-n1')\n"
            "for _ in range(300):\n    c.feed(); time.sleep(0.2)\n")
    feeder = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(TIMEOUT + 1.0)  # it imports, then feeds
        assert pid_alive(qemu_pid)
        os.kill(feeder.pid, signal.SIGSTOP)
        fenced_after = wait_for(lambda: not pid_alive(qemu_pid), TIMEOUT + 2)
        assert pid_alive(feeder.pid)  # the feeder is frozen, not dead
        print(f"fenced {fenced_after:.2f}s after SIGSTOP (timeout {TIMEOUT}s)")
    finally:
        os.kill(feeder.pid, signal.SIGCONT)
        feeder.kill()
        feeder.wait(5)


# --- the mux process against a fake device -------------------------------------------------
# The real `corral watchdog-mux` process, with its device replaced by a fake that journals
# each operation to a file (never /dev/watchdog here: it would reset this machine).

CLIENT_TIMEOUT = 0.6
# The fake rounds the asked 3 s up to 4 s, as drivers with a coarse timer do.
MUX_FENCE = CLIENT_TIMEOUT + 0.1 + 4


class Mux:
    def __init__(self, root: Path, name: str = "mux", fed_at_start: bool = True) -> None:
        self.sock = root / "mux.sock"
        self.state = root / "armed"
        self.journal = root / f"{name}.journal"
        self.log = root / f"{name}.log"
        self.journal.write_text("")
        self.sock.unlink(missing_ok=True)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corral.cli.main", "watchdog-mux",
                 "--device", str(self.journal), "--fake-device", "--fake-granularity", "2",
                 "--device-timeout", "3", "--socket", str(self.sock),
                 "--state-dir", str(self.state), "--client-timeout", str(CLIENT_TIMEOUT),
                 "--interval", "0.1"],
                stdout=out, stderr=subprocess.STDOUT)
        started = "keepalive" if fed_at_start else "gettimeout 4"
        wait_for(lambda: started in self.ops() or self.proc.poll() is not None, 20)
        assert self.proc.poll() is None, self.log.read_text()

    def stamped(self) -> list[tuple[float, str]]:
        """(CLOCK_MONOTONIC, operation) per device operation."""
        return [(float(t), op) for t, _, op in
                (line.partition(" ") for line in self.journal.read_text().splitlines())]

    def ops(self) -> list[str]:
        return [op for _, op in self.stamped()]

    def keepalives(self) -> int:
        return self.ops().count("keepalive")

    def fed_within(self, seconds: float) -> bool:
        before = self.keepalives()
        time.sleep(seconds)
        return self.keepalives() > before

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def mux_root(short_tmp: Path) -> Iterator[Path]:
    yield short_tmp


@pytest.fixture
def mux(mux_root: Path) -> Iterator[Mux]:
    m = Mux(mux_root)
    try:
        yield m
    finally:
        m.stop()


def feed_for(client: WatchdogClient, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        client.feed()
        time.sleep(0.1)


def test_mux_acknowledges_arming_with_the_fence_time_of_the_device_it_read_back(
        mux: Mux) -> None:
    assert mux.ops()[:3] == ["open", "settimeout 3 -> 4", "gettimeout 4"]
    client = WatchdogClient(mux.sock, "agent-n1")
    ack = client.arm(5)
    assert ack is not None
    assert (ack.client, ack.timeout) == ("agent-n1", CLIENT_TIMEOUT)
    assert ack.fence == pytest.approx(MUX_FENCE)
    assert (mux.state / "agent-n1").exists()
    client.sock.sendto(b"arm ../../etc/passwd", str(mux.sock))  # malformed: ignored
    client.sock.sendto(b"\xff" * 300, str(mux.sock))
    assert sorted(p.name for p in mux.state.iterdir()) == ["agent-n1"]
    client.disarm()


def test_mux_starves_the_device_once_an_armed_client_stops_feeding(mux: Mux) -> None:
    client = WatchdogClient(mux.sock, "agent-n1")
    assert mux.fed_within(0.3)  # nobody armed: the mux's own liveness feeds it
    assert client.arm(5) is not None
    feed_for(client, 1.0)
    assert mux.fed_within(0.3)
    client.feed()
    last_feed = time.monotonic()  # the same clock as the journal's
    time.sleep(CLIENT_TIMEOUT + 0.3)  # silent past its timeout
    assert not mux.fed_within(1.0)
    assert "agent-n1 not fed" in mux.log.read_text()
    last_write = max(t for t, op in mux.stamped() if op == "keepalive")
    assert last_write > last_feed  # fed while the client was within its timeout
    print(f"last device write {last_write - last_feed:.3f}s after the last feed (bound: client "
          f"timeout + interval = {CLIENT_TIMEOUT + 0.1:g}s; the device adds its own 4s)")
    feed_for(client, 0.3)  # back in time (a real host would not have been reset yet)
    assert mux.fed_within(0.3)
    client.disarm()


def test_a_client_gone_without_the_close_handshake_keeps_the_device_unfed(mux: Mux) -> None:
    code = ("import sys, time, pathlib\nfrom corral.fencing.client import WatchdogClient\n"
            f"c = WatchdogClient(pathlib.Path({str(mux.sock)!r}), sys.argv[1])\n"
            "assert c.arm(5)\nfor _ in range(5):\n    c.feed(); time.sleep(0.1)\n"
            "if sys.argv[2] == 'clean':\n    c.disarm()\n")
    subprocess.run([sys.executable, "-c", code, "clean-one", "clean"], check=True, timeout=30)
    time.sleep(CLIENT_TIMEOUT + 0.3)
    assert mux.fed_within(0.5)  # a clean close disarmed it
    subprocess.run([sys.executable, "-c", code, "crashed-one", "crash"], check=True,
                   timeout=30)
    time.sleep(CLIENT_TIMEOUT + 0.3)
    assert not mux.fed_within(1.0)  # exited without `disarm`: still armed, unfed
    assert (mux.state / "crashed-one").exists() and not (mux.state / "clean-one").exists()


def test_a_restarted_mux_still_guards_its_armed_clients(mux_root: Path) -> None:
    first = Mux(mux_root, "first")
    client = WatchdogClient(first.sock, "agent-n1")
    try:
        assert client.arm(5) is not None
        feed_for(client, 0.3)
    finally:
        first.stop()  # SIGKILL: as a crash
    assert "magic-close" not in first.ops()
    second = Mux(mux_root, "second", fed_at_start=False)
    try:
        assert not second.fed_within(1.0)
        assert "agent-n1" in second.log.read_text()  # restored from its marker
        feed_for(client, 0.5)  # the client comes back: the device is fed again
        assert second.fed_within(0.3)
        client.disarm()
        time.sleep(0.3)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(10) == 0
        assert second.ops()[-1] == "magic-close"
    finally:
        second.stop()


def test_sigterm_with_armed_clients_leaves_the_device_armed_until_they_disarm(
        mux: Mux) -> None:
    client = WatchdogClient(mux.sock, "agent-n1")
    assert client.arm(5) is not None
    mux.proc.send_signal(signal.SIGTERM)
    feed_for(client, 1.0)
    assert mux.proc.poll() is None  # the stop is refused while a client is armed
    assert mux.fed_within(0.3) and "magic-close" not in mux.ops()
    assert "stop refused: agent-n1 armed" in mux.log.read_text()
    time.sleep(CLIENT_TIMEOUT + 0.3)
    assert not mux.fed_within(0.5)  # and it still judges the client: unfed, no reset averted
    client.disarm()
    assert mux.proc.wait(10) == 0
    assert mux.ops()[-1] == "magic-close"


def test_sigterm_without_armed_clients_ends_with_the_magic_close(mux: Mux) -> None:
    mux.proc.send_signal(signal.SIGTERM)
    assert mux.proc.wait(10) == 0
    assert mux.ops()[-1] == "magic-close"


def test_labdog_acknowledges_its_timeout_plus_its_tick(
        labdog: tuple[subprocess.Popen[str], Path]) -> None:
    _, sock = labdog
    client = WatchdogClient(sock, "agent-n1")
    ack = client.arm(5)
    assert ack is not None and ack.fence == pytest.approx(TIMEOUT + 0.1)
    assert ack.timeout == TIMEOUT
    client.disarm()


# --- what a real agent publishes -------------------------------------------------------------


async def published(store: Store, node: str) -> float | None:
    async def info() -> NodeInfo | None:
        n = await store.node(node)
        return n.info if n is not None and n.alive else None

    found = await async_wait_for(info, 40, f"{node} to register")
    return found.watchdog_timeout


@pytest.mark.parametrize(("labdog_timeout", "expected"), [
    (1.5, 1.5 + 0.1),  # fits TTL 4: 1.6 + 0.5 (renewal) + 0.5 (margin)
    (3.5, 0.0),  # 3.6 + 1.17 + 0.5 > 4: HA work refused
])
async def test_agent_publishes_the_acknowledged_fence_time_only_when_it_fits(
        store: Store, etcd_endpoint: str, short_tmp: Path, tiny_images: Path,
        labdog_timeout: float, expected: float) -> None:
    sock = short_tmp / "wd.sock"
    (short_tmp / "dogrun").mkdir()
    dog = start_labdog(short_tmp / "dogrun", sock, labdog_timeout, short_tmp / "labdog.log")
    agent = AgentProc(etcd_endpoint, short_tmp / "n1", tiny_images, "n1")
    # Its own setting (1 s) differs from what the watchdog does: it must not be published.
    agent.argv += ["--watchdog-socket", str(sock), "--watchdog-timeout", "1"]
    try:
        agent.start()
        assert await published(store, "n1") == pytest.approx(expected)
        if not expected:
            text = (agent.data_dir / "agent.log").read_text()
            assert "PUBLISHING NO WATCHDOG" in text and "does not fit" in text
    finally:
        try:
            agent.stop()
        finally:  # also when the agent's stop fails the test: no watchdog left behind
            dog.terminate()
            dog.wait(10)


async def test_agent_without_a_watchdog_answering_publishes_none(
        store: Store, etcd_endpoint: str, short_tmp: Path, tiny_images: Path) -> None:
    agent = AgentProc(etcd_endpoint, short_tmp / "n1", tiny_images, "n1")
    agent.argv += ["--watchdog-socket", str(short_tmp / "nobody.sock"), "--watchdog-timeout",
                   "1.5"]
    try:
        agent.start()
        assert await published(store, "n1") == 0.0
        text = (agent.data_dir / "agent.log").read_text()
        assert "PUBLISHING NO WATCHDOG" in text and "no acknowledgement" in text
    finally:
        agent.stop()


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
