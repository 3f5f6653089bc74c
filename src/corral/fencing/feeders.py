"""Which clients are armed and when each was last fed: the state both watchdogs share.

With a marker directory, each armed client has a file there from its arming to its clean
close, so a watchdog that restarts knows whom it still guards. Put the directory on a tmpfs
(/run): the host's reset, which is what an armed client that never returns gets, clears it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from corral.fencing.protocol import Message, valid_client


@dataclass
class Feeders:
    timeout: float  # seconds a client may go unfed
    markers: Path | None = None  # one file per armed client
    last: dict[str, float] = field(default_factory=dict)  # armed client -> last feed

    def restore(self) -> list[str]:
        """Arm the clients of the markers left by a previous run, as never fed: they keep the
        watchdog unfed until they feed again, so one that never returns is fenced."""
        if self.markers is None or not self.markers.is_dir():
            return []
        found = sorted(p.name for p in self.markers.iterdir() if valid_client(p.name))
        for client in found:
            self.last.setdefault(client, -math.inf)
        return found

    def handle(self, message: Message, now: float) -> str | None:
        """Apply a message; returns a line worth logging when the arming changed."""
        if message.verb in ("arm", "feed"):
            armed = message.client not in self.last
            self.last[message.client] = now
            if not armed and message.verb == "feed":
                return None
            marked = self._mark(message.client)  # again on each `arm`: cheap, and rare
            if not armed:
                return f"{message.client} armed again{marked}" if marked else None
            return f"{message.client} armed{marked}" + (
                " by its first feed" if message.verb == "feed" else "")
        if self.last.pop(message.client, None) is not None:
            self._unmark(message.client)
            return f"{message.client} disarmed (clean close)"
        return None

    def stale(self, now: float) -> list[str]:
        return sorted(c for c, t in self.last.items() if now - t > self.timeout)

    def forget(self, clients: list[str]) -> None:
        """After a fence, as after a reset: the clients are no longer armed."""
        for client in clients:
            self.last.pop(client, None)
            self._unmark(client)

    def _mark(self, client: str) -> str:
        if self.markers is None:
            return ""
        try:
            self.markers.mkdir(parents=True, exist_ok=True)
            (self.markers / client).touch()
        except OSError as e:  # armed all the same; only a restart would forget it
            return f" (marker not written: {e})"
        return ""

    def _unmark(self, client: str) -> None:
        if self.markers is not None:
            with contextlib.suppress(OSError):
                (self.markers / client).unlink(missing_ok=True)
