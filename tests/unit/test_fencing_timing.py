"""The watchdog device's ioctl sequence (fake device), the fence-time figures, the protocol and
the arming markers; what the agent publishes; the fence time in `ha status`."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.agent.settings import AgentSettings, published_fence_time
from corral.cli.ha import fence_time
from corral.cluster.models import Node, NodeInfo
from corral.cluster.snapshot import ClusterSnapshot
from corral.fencing import device
from corral.fencing.client import WatchdogClient
from corral.fencing.device import DeviceError, FakeWatchdog
from corral.fencing.feeders import Feeders
from corral.fencing.mux import MuxError, WatchdogMux
from corral.fencing.protocol import Ack, Message, bind, parse, parse_ack
from corral.fencing.timing import fits_lease, labdog_fence_time, mux_fence_time
from corral.ha.models import HAInputs
from corral.ha.status import ha_status


def test_ioctl_numbers_are_linuxs() -> None:
    # <linux/watchdog.h> on x86_64 and arm64: _IOWR('W', 6, int), _IOR('W', 7, int), ...
    assert device.WDIOC_SETTIMEOUT == 0xC0045706
    assert device.WDIOC_GETTIMEOUT == 0x80045707
    assert device.WDIOC_KEEPALIVE == 0x80045705


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield a
    a.close()
    b.close()


def test_mux_sets_the_timeout_and_uses_the_one_the_device_reads_back(
        sock: socket.socket) -> None:
    dev = FakeWatchdog(granularity=2)  # a driver that rounds up: asked 3, uses 4
    mux = WatchdogMux(dev, sock, client_timeout=4, interval=0.5, device_timeout=3)
    mux.start()
    assert dev.ops == ["open", "settimeout 3 -> 4", "gettimeout 4"]
    assert mux.device_timeout == 4
    assert mux.fence == 4 + 0.5 + 4


def test_mux_with_a_device_that_refuses_the_timeout_counts_the_devices_own(
        sock: socket.socket) -> None:
    dev = FakeWatchdog(refuse_settimeout=True, timeout=60)  # softdog's default
    mux = WatchdogMux(dev, sock, client_timeout=4, interval=0.5, device_timeout=2)
    mux.start()
    assert dev.ops == ["open", "settimeout 2 refused", "gettimeout 60"]
    assert mux.fence == 4 + 0.5 + 60


def test_mux_refuses_a_device_timeout_not_above_its_interval(sock: socket.socket) -> None:
    mux = WatchdogMux(FakeWatchdog(), sock, client_timeout=4, interval=1.5, device_timeout=1)
    with pytest.raises(MuxError, match="must be below"):
        mux.start()


def test_mux_closes_with_the_magic_close_only_without_armed_clients(
        sock: socket.socket, tmp_path: Path) -> None:
    dev = FakeWatchdog()
    mux = WatchdogMux(dev, sock, client_timeout=4, interval=0.5, device_timeout=2,
                      state_dir=tmp_path)
    mux.start()
    mux.handle(b"arm agent-n1", None)
    assert mux.step() and dev.ops[-1] == "keepalive"
    mux.stopping = True
    assert not mux.may_stop()  # armed: the stop is refused
    mux.close()  # what an error would do: no magic close
    assert dev.ops[-1] == "close (still armed)" and dev.running

    dev2 = FakeWatchdog()
    mux2 = WatchdogMux(dev2, sock, client_timeout=4, interval=0.5, device_timeout=2,
                       state_dir=tmp_path)
    mux2.start()
    assert mux2.feeders.last == {"agent-n1": -math.inf}  # restored from its marker
    assert not mux2.step()  # never fed since the restart: the device stays unfed
    mux2.handle(b"feed agent-n1", None)
    assert mux2.step()
    mux2.handle(b"disarm agent-n1", None)
    mux2.stopping = True
    assert mux2.may_stop()
    mux2.close()
    assert dev2.ops[-1] == "magic-close" and not dev2.running
    assert not (tmp_path / "agent-n1").exists()


def test_fake_device_refuses_what_a_closed_device_would() -> None:
    dev = FakeWatchdog()
    with pytest.raises(DeviceError):
        dev.keepalive()
    dev.open()
    with pytest.raises(DeviceError, match="busy"):
        dev.open()


def test_fence_time_figures() -> None:
    assert mux_fence_time(4, 0.5, 2) == 6.5
    assert labdog_fence_time(6, 0.1) == pytest.approx(6.1)
    # The lab: labdog 6 s, renewal every 2 s, TTL 10 s.
    assert fits_lease(6.1, 2, 10)
    assert not fits_lease(8.0, 2, 10)  # 8 + 2 + 0.5 > 10
    assert not fits_lease(0, 1, 10)  # no watchdog is no fence


def test_agent_publishes_the_acknowledged_figure_only_when_it_fits() -> None:
    assert published_fence_time(None, 2, 10)[0] == 0
    assert published_fence_time(Ack("agent-n1", 6.5, 4), 4 / 3, 10)[0] == 6.5
    fence, why = published_fence_time(Ack("agent-n1", 64.5, 4), 4 / 3, 10)
    assert fence == 0 and "does not fit" in why


def test_agent_paces_its_renewals_by_the_shorter_client_timeout(tmp_path: Path) -> None:
    s = AgentSettings("n1", tmp_path, tmp_path, lease_ttl=10, watchdog_socket=tmp_path / "s",
                      watchdog_timeout=6)
    assert s.renew_interval() == 2
    assert s.renew_interval(3) == 1
    assert AgentSettings("n1", tmp_path, tmp_path, lease_ttl=9).renew_interval() == 3
    AgentSettings("n1", tmp_path, tmp_path, watchdog_socket=tmp_path / "s").check()  # 0: ask
    with pytest.raises(ValueError, match="below the lease TTL"):
        AgentSettings("n1", tmp_path, tmp_path, lease_ttl=5, watchdog_socket=tmp_path / "s",
                      watchdog_timeout=5).check()


@pytest.mark.parametrize("data", [
    b"", b"feed", b"feed a b", b"eat agent", b"feed ../etc", b"feed .hidden", b"\xff\xfe",
    b"feed " + b"x" * 81, b"armed agent 1 1",
])
def test_malformed_requests_are_ignored(data: bytes) -> None:
    assert parse(data) is None


def test_requests_and_acknowledgements_parse() -> None:
    assert parse(b"arm agent-n1") == Message("arm", "agent-n1")
    assert parse(b" feed  agent-n1\n") == Message("feed", "agent-n1")
    longest = "agent-" + "h" * 63  # the longest host name
    assert parse(f"arm {longest}".encode()) == Message("arm", longest)
    assert parse_ack(Ack("agent-n1", 6.5, 4).encode()) == Ack("agent-n1", 6.5, 4)
    for bad in (b"armed agent-n1 6.5", b"armed agent-n1 nan 4", b"armed agent-n1 3 4",
                b"disarmed agent-n1", b"armed agent-n1 6.5 0"):
        assert parse_ack(bad) is None


def test_markers_follow_the_arming(tmp_path: Path) -> None:
    f = Feeders(4, tmp_path / "armed")
    assert f.handle(Message("feed", "a"), 10) == "a armed by its first feed"
    assert f.handle(Message("arm", "b"), 10) == "b armed"
    assert f.handle(Message("feed", "b"), 11) is None
    assert sorted(p.name for p in (tmp_path / "armed").iterdir()) == ["a", "b"]
    assert f.stale(14.5) == ["a"]
    f.forget(["a"])  # fenced: like a reset, the arming ends
    assert f.handle(Message("disarm", "b"), 12) == "b disarmed (clean close)"
    assert list((tmp_path / "armed").iterdir()) == []
    (tmp_path / "armed" / "c").touch()
    (tmp_path / "armed" / ".junk").touch()
    restored = Feeders(4, tmp_path / "armed")
    assert restored.restore() == ["c"]
    assert restored.stale(0) == ["c"]  # never fed since the restart


def test_ha_status_shows_each_hosts_published_fence_time() -> None:
    def node(name: str, wd: float | None) -> Node:
        return Node(name, NodeInfo(name=name, cpus=1, memory_mb=1024, watchdog_timeout=wd),
                    True, None, None)

    nodes = {"n1": node("n1", 6.1), "n2": node("n2", 0.0), "n3": node("n3", None)}
    report = ha_status(ClusterSnapshot(now=1, nodes=nodes, vms={}), HAInputs())
    shown = {r.node: fence_time(r.fence_time) for r in report.nodes}
    assert shown == {"n1": "6.1s", "n2": "none: unfenceable", "n3": "unknown"}


def test_linux_device_on_a_regular_file_writes_and_refuses_the_ioctls(
        tmp_path: Path, sock: socket.socket) -> None:
    """The kernel device's I/O path against a plain file (never /dev/watchdog here): writes
    land, the watchdog ioctls fail cleanly, and a mux that cannot read the timeout back
    refuses to run, leaving with the magic close since nobody is armed."""
    path = tmp_path / "watchdog"
    path.touch()
    dev = device.LinuxWatchdog(path)
    dev.open()
    dev.keepalive()
    with pytest.raises(DeviceError):
        dev.set_timeout(3)
    with pytest.raises(DeviceError):
        dev.get_timeout()
    dev.magic_close()
    assert path.read_bytes() == device.KEEPALIVE + device.MAGIC_CLOSE and dev.fd == -1

    mux = WatchdogMux(device.LinuxWatchdog(path), sock, client_timeout=4, interval=0.5)
    with pytest.raises(MuxError, match="cannot read the timeout"):
        mux.run()
    assert path.read_bytes().endswith(device.MAGIC_CLOSE + device.MAGIC_CLOSE)


def test_a_client_is_armed_only_by_its_own_acknowledgement(tmp_path: Path) -> None:
    """Against a real datagram socket: no answer, and the client resends `arm` until its
    bounded wait ends, then knows it is not armed; answers for another client or garbage are
    skipped, its own acknowledgement is taken."""
    mute = bind(tmp_path / "wd.sock")
    client = WatchdogClient(tmp_path / "wd.sock", "agent-n1")
    try:
        assert client.arm(1.2) is None
        mute.setblocking(False)
        sent: list[bytes] = []
        with contextlib.suppress(BlockingIOError):
            while True:
                sent.append(mute.recv(256))
        assert len(sent) >= 2 and set(sent) == {b"arm agent-n1"}

        def answer() -> None:
            mute.setblocking(True)
            _, address = mute.recvfrom(256)
            for data in (b"armed agent-n2 6.5 4", b"armed agent-n1 x 4", b"disarmed agent-n1",
                         Ack("agent-n1", 6.5, 4).encode()):
                mute.sendto(data, address)

        answering = threading.Thread(target=answer)
        answering.start()
        assert client.arm(5) == Ack("agent-n1", 6.5, 4)
        answering.join(5)
    finally:
        client.close()
        mute.close()
