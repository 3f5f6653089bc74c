"""The agent's side of the interactive serial console: at most one connection to each VM's
serial socket while anyone watches, its output fanned out to every watcher, and every
watcher's keystrokes written to it.

QEMU serves the socket to one client at a time and logs all output to the serial log as
well, attached or not (qemu/cmdline.py); the link reads the socket without pause, so a
watcher can never stall the guest's serial port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from corral.serial import core

log = logging.getLogger(__name__)

READ_BYTES = 65536
CONNECT_TIMEOUT = 5.0


class Watcher:
    """One websocket's view of a link: output to send, and how it ended (None while open)."""

    def __init__(self, backlog_limit: int) -> None:
        self.backlog = core.Backlog(backlog_limit)
        self.closed: core.Close | None = None
        self._ready = asyncio.Event()

    def push(self, chunk: bytes) -> bool:
        fits = self.backlog.push(chunk)
        self._ready.set()
        return fits

    def end(self, why: core.Close) -> None:
        if self.closed is None:
            self.closed = why
        self._ready.set()

    async def next(self) -> bytes | core.Close:
        """Output queued (all of it, at once), or how the watch ended once nothing is left."""
        while not self.backlog and self.closed is None:
            self._ready.clear()
            await self._ready.wait()
        if self.closed is not None and self.closed.code == core.TRY_AGAIN_LATER:
            return self.closed  # dropped for being slow: its backlog is what it could not take
        if self.backlog:
            return self.backlog.take()
        assert self.closed is not None
        return self.closed


class Link:
    """One connection to one VM's serial socket, shared by its watchers."""

    def __init__(self, vmid: int, node: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, seed: bytes, on_empty: Callable[[Link], None],
                 backlog_limit: int) -> None:
        self.vmid = vmid
        self.node = node
        self.reader = reader
        self.writer = writer
        self.recent = core.Recent(seed)
        self.watchers: set[Watcher] = set()
        self.backlog_limit = backlog_limit
        self._on_empty = on_empty
        self._pump = asyncio.create_task(self._read_forever(), name=f"serial-{vmid}")

    def watch(self) -> tuple[Watcher, bytes]:
        """A new watcher and the recent output to show it first; what follows is live."""
        watcher = Watcher(self.backlog_limit)
        self.watchers.add(watcher)
        return watcher, self.recent.tail()

    def leave(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)
        if not self.watchers:
            self.close()

    async def type(self, data: bytes) -> None:
        """Keystrokes to the guest. A guest that reads slowly holds up its writers alone."""
        if data and not self.writer.is_closing():
            self.writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def close(self) -> None:
        self._pump.cancel()
        self.writer.close()
        self._on_empty(self)

    async def _read_forever(self) -> None:
        why = core.ended(self.vmid, self.node)
        try:
            while data := await self.reader.read(READ_BYTES):
                self.recent.add(data)
                for watcher in list(self.watchers):
                    if not watcher.push(data):
                        watcher.end(core.too_slow())
                        self.watchers.discard(watcher)
        except ConnectionError as e:
            log.info("VM %s: serial socket failed: %s", self.vmid, e)
        except asyncio.CancelledError:
            why = core.Close(core.NORMAL, "console closed")
            raise
        finally:
            for watcher in self.watchers:
                watcher.end(why)
            self.watchers.clear()
            self.writer.close()
            self._on_empty(self)


class NoConsole(Exception):
    """Why a VM's console cannot be attached to here, as the close to answer with."""

    def __init__(self, close: core.Close) -> None:
        super().__init__(close.reason)
        self.close = close


class SerialHub:
    """The agent's links, by vmid: made by the first watcher, closed after the last."""

    def __init__(self, node: str, backlog_limit: int = core.MAX_BACKLOG_BYTES) -> None:
        self.node = node
        self.backlog_limit = backlog_limit
        self.links: dict[int, Link] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def watch(self, vmid: int, socket: Path, log_file: Path) -> tuple[Link, Watcher,
                                                                            bytes]:
        """Attach to the VM's serial socket (or its link already open): the link, a new
        watcher and the recent output to show first. NoConsole if there is none to attach."""
        async with self._locks[vmid]:
            link = self.links.get(vmid)
            if link is None:
                link = await self._open(vmid, socket, log_file)
                self.links[vmid] = link
            watcher, tail = link.watch()
            return link, watcher, tail

    async def _open(self, vmid: int, socket: Path, log_file: Path) -> Link:
        if not socket.exists():
            raise NoConsole(core.Close(core.UNREACHABLE, (
                f"VM {vmid}'s QEMU has no serial socket: it was started before the "
                "interactive console existed; restart the VM to get one")))
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_unix_connection(str(socket),
                                                                    limit=READ_BYTES)
        except (OSError, TimeoutError) as e:
            raise NoConsole(core.Close(core.UNREACHABLE,
                                       f"cannot attach to VM {vmid}'s serial port: {e}")) from e
        # Read right after connecting: output logged in between shows twice, never not at all.
        return Link(vmid, self.node, reader, writer, _log_tail(log_file), self._forget,
                    self.backlog_limit)

    def _forget(self, link: Link) -> None:
        if self.links.get(link.vmid) is link:
            del self.links[link.vmid]

    async def close(self) -> None:
        for link in list(self.links.values()):
            link.close()


def _log_tail(path: Path, limit: int = core.TAIL_BYTES) -> bytes:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - limit))
            return core.whole_lines(fh.read(limit), cut=size > limit)
    except OSError:
        return b""
