"""One QMP exchange on a fresh connection: greeting, capabilities, one command, hang up.

QEMU 7.2 serves one client per QMP monitor and only puts the monitor back into
capabilities-negotiation mode when the next client's connection is set up, in the monitor's
I/O thread. An event the main loop raises at that moment (a block job changing state, a
migration moving on) is still written to the new client: before the greeting, or between
the greeting and the reply to `qmp_capabilities`. A reply to a command whose client hung up
before reading it (a timeout) can reach the next client as well. qemu.qmp 0.0.6 takes the
first message as the greeting and the next as the negotiation reply, so such a stray message
failed the exchange ("Did not understand Greeting", "Negotiation failed").

So this exchange skips whatever is not the message it waits for: events always, replies
whose id is not one of its own (ids are random, never reused by another client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

READ_LIMIT = 16 * 1024 * 1024  # the longest reply line (query-named-block-nodes grows)


class QMPError(Exception):
    """The monitor connection broke or spoke something that is not QMP."""


class QMPCommandError(QMPError):
    """QEMU answered the command with an error."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{error_class}: {desc}" if desc else error_class)
        self.command = command
        self.error_class = error_class
        self.desc = desc


async def exchange(
    socket: Path,
    command: str,
    arguments: Mapping[str, Any] | None = None,
    timeout: float = 10.0,  # one bound for connect, greeting and reply together
) -> Any:
    """Run `command` on the monitor at `socket` and return its `return` value.

    Raises TimeoutError when the whole exchange takes longer than `timeout`, OSError when
    the socket cannot be reached, QMPCommandError for QEMU's error reply, QMPError otherwise.
    """
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(str(socket), limit=READ_LIMIT)
        try:
            await _read_until(reader, lambda msg: "QMP" in msg)
            await _call(reader, writer, "qmp_capabilities", None)
            return await _call(reader, writer, command, arguments)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _call(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    command: str,
    arguments: Mapping[str, Any] | None,
) -> Any:
    msg_id = uuid.uuid4().hex
    request: dict[str, Any] = {"execute": command, "id": msg_id}
    if arguments is not None:
        request["arguments"] = dict(arguments)
    writer.write(json.dumps(request).encode() + b"\n")
    await writer.drain()
    reply = await _read_until(reader, lambda msg: msg.get("id") == msg_id)
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], dict) else {}
        raise QMPCommandError(command, str(error.get("class", "GenericError")),
                              str(error.get("desc", "")))
    if "return" not in reply:
        raise QMPError(f"reply to {command} has neither return nor error: {reply}")
    return reply["return"]


async def _read_until(
    reader: asyncio.StreamReader, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The next message `wanted` accepts; events and others' replies on the way are dropped."""
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # a line longer than READ_LIMIT
            raise QMPError(f"QMP message too long: {exc}") from exc
        if not line:
            raise QMPError("QEMU closed the monitor connection")
        try:
            msg = json.loads(line)
        except ValueError as exc:
            raise QMPError(f"not a QMP message: {line[:200]!r}") from exc
        if isinstance(msg, dict) and "event" not in msg and wanted(msg):
            return msg
