"""The QMP exchange against the message orders QEMU 7.2 was seen to produce on a freshly
accepted monitor connection while block-job and migration events flowed: an event before the
greeting, an event before the reply to `qmp_capabilities`. A reply that belongs to an earlier
client (one that hung up before reading it) must not be taken for this exchange's either.

The server below replays those orders byte for byte; tests/integration/test_qmp_stress.py
meets them in a real QEMU."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from corral.qemu.driver import QemuDriver
from corral.qemu.qmp_exchange import QMPCommandError, exchange

VMID = 100
GREETING = {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""},
                    "capabilities": ["oob"]}}


def event(name: str, **data: Any) -> dict[str, Any]:
    return {"timestamp": {"seconds": 1, "microseconds": 0}, "event": name, "data": data}


JOB_READY = event("JOB_STATUS_CHANGE", status="ready", id="mig-mirror0")
STANDBY = event("JOB_STATUS_CHANGE", status="standby", id="mig-mirror0")
Reply = Callable[[dict[str, Any]], list[dict[str, Any]]]


async def scripted_monitor(socket: Path, before_greeting: list[dict[str, Any]],
                           answer: Reply) -> asyncio.AbstractServer:
    """A QMP monitor that writes `before_greeting`, the greeting, then `answer(request)` for
    each request."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(*msgs: dict[str, Any]) -> None:
            writer.write(b"".join(json.dumps(m).encode() + b"\r\n" for m in msgs))

        send(*before_greeting, GREETING)
        while line := await reader.readline():
            send(*answer(json.loads(line)))
        writer.close()

    return await asyncio.start_unix_server(serve, str(socket))


def qemu_like(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Events and an earlier client's reply ahead of every real reply."""
    msg_id = request["id"]
    if request["execute"] == "qmp_capabilities":
        return [STANDBY, {"return": {}, "id": msg_id}]
    if request["execute"] == "query-status":
        stale = {"return": [{"device": "mig-mirror0"}], "id": "__qmp#00000"}
        return [JOB_READY, stale, {"return": {"status": "running"}, "id": msg_id}]
    return [{"error": {"class": "CommandNotFound", "desc": "no such command"}, "id": msg_id}]


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[QemuDriver]:
    driver = QemuDriver(tmp_path, tmp_path, "tcg")
    server = await scripted_monitor(driver.paths(VMID).qmp_socket, [JOB_READY], qemu_like)
    async with server:
        yield driver


async def test_events_and_stale_replies_are_skipped(driver: QemuDriver) -> None:
    for _ in range(3):
        assert await driver.qmp(VMID, "query-status") == {"status": "running"}


async def test_error_reply_names_the_class(driver: QemuDriver) -> None:
    with pytest.raises(QMPCommandError, match="CommandNotFound: no such command"):
        await exchange(driver.paths(VMID).qmp_socket, "bogus", timeout=5)


async def test_silent_monitor_times_out(tmp_path: Path) -> None:
    socket = tmp_path / "silent.qmp"
    # Greets, then never answers: like a QEMU whose main loop hangs.
    server = await scripted_monitor(socket, [], lambda request: [])
    async with server:
        with pytest.raises(TimeoutError):
            await exchange(socket, "query-status", timeout=0.3)
