"""The agent's serial hub against a unix socket server that takes the place of QEMU's serial
chardev: one connection per VM whatever the number of watchers, output fanned out, keystrokes
from each watcher, a slow watcher dropped, and the end of QEMU ending every watcher."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corral.serial import core
from corral.serial.hub import NoConsole, SerialHub


@dataclass
class FakeSerial:
    """A serial port server: counts its connections, records what it was sent."""

    socket: Path
    log: Path
    accepted: int = 0
    received: bytearray = field(default_factory=bytearray)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None

    async def serve(self) -> None:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self.writers.append(writer)
            while data := await reader.read(4096):
                self.received += data

        self.server = await asyncio.start_unix_server(client, str(self.socket))

    async def output(self, data: bytes) -> None:
        for writer in self.writers:
            writer.write(data)
            await writer.drain()

    def hang_up(self) -> None:
        for writer in self.writers:
            writer.close()
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def serial() -> AsyncIterator[FakeSerial]:
    where = Path(tempfile.mkdtemp(prefix="sh", dir="/tmp"))
    fake = FakeSerial(where / "100.tty", where / "100.serial.log")
    fake.log.write_bytes(b"boot\r\ncorral-heartbeat 1\r\n")
    await fake.serve()
    try:
        yield fake
    finally:
        fake.hang_up()
        shutil.rmtree(where, ignore_errors=True)


async def until(check: object, what: str) -> None:
    for _ in range(200):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_two_watchers_share_one_connection(serial: FakeSerial) -> None:
    hub = SerialHub("n1")
    link, one, tail_one = await hub.watch(100, serial.socket, serial.log)
    same, two, tail_two = await hub.watch(100, serial.socket, serial.log)
    assert same is link and tail_one == tail_two == b"boot\r\ncorral-heartbeat 1\r\n"
    await until(lambda: serial.accepted == 1, "the connection")
    await serial.output(b"corral-heartbeat 2\r\n")
    assert await asyncio.wait_for(one.next(), 5) == b"corral-heartbeat 2\r\n"
    assert await asyncio.wait_for(two.next(), 5) == b"corral-heartbeat 2\r\n"
    await link.type(b"ls\r")
    await same.type(b"pwd\r")
    await until(lambda: bytes(serial.received) == b"ls\rpwd\r", "both watchers' keystrokes")
    # A later watcher gets what the link saw, the log's tail included.
    _, three, tail = await hub.watch(100, serial.socket, serial.log)
    assert tail == b"boot\r\ncorral-heartbeat 1\r\ncorral-heartbeat 2\r\n"
    for watcher in (one, two, three):
        link.leave(watcher)
    assert 100 not in hub.links and serial.accepted == 1


async def test_a_slow_watcher_is_dropped_and_the_others_go_on(serial: FakeSerial) -> None:
    hub = SerialHub("n1", backlog_limit=64)
    link, slow, _ = await hub.watch(100, serial.socket, serial.log)
    _, fast, _ = await hub.watch(100, serial.socket, serial.log)
    await until(lambda: serial.accepted == 1, "the connection")
    got = bytearray()
    for n in range(10):
        await serial.output(b"corral-heartbeat %02d\r\n" % n)
        while b"%02d" % n not in got:
            chunk = await asyncio.wait_for(fast.next(), 5)
            assert isinstance(chunk, bytes)
            got += chunk
    assert await asyncio.wait_for(slow.next(), 5) == core.too_slow()
    assert slow not in link.watchers and fast in link.watchers
    assert bytes(got).count(b"corral-heartbeat") == 10


async def test_the_end_of_qemu_ends_every_watcher(serial: FakeSerial) -> None:
    hub = SerialHub("n1")
    _, one, _ = await hub.watch(100, serial.socket, serial.log)
    _, two, _ = await hub.watch(100, serial.socket, serial.log)
    await until(lambda: serial.accepted == 1, "the connection")
    await serial.output(b"last words\r\n")
    serial.hang_up()
    for watcher in (one, two):
        assert await asyncio.wait_for(watcher.next(), 5) == b"last words\r\n"
        ended = await asyncio.wait_for(watcher.next(), 5)
        assert ended == core.ended(100, "n1") and ended.code == core.ENDED
    assert 100 not in hub.links


async def test_no_socket_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(NoConsole) as no:
        await SerialHub("n1").watch(100, tmp_path / "100.tty", tmp_path / "100.serial.log")
    assert no.value.close.code == core.UNREACHABLE and "restart the VM" in no.value.close.reason
