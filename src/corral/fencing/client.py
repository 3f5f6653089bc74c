"""The agent's side of the watchdog: one datagram per feed, never blocking the agent."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from corral.fencing.protocol import Message

log = logging.getLogger(__name__)


class WatchdogClient:
    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self._failing = False

    def _send(self, message: Message) -> bool:
        try:
            self.sock.sendto(message.encode(), str(self.path))
        except OSError as e:
            # The watchdog not (yet) listening: the next renewal tries again. Log the change
            # only, not every attempt.
            if not self._failing:
                log.warning("watchdog at %s not reachable: %s", self.path, e)
            self._failing = True
            return False
        if self._failing:
            log.info("watchdog at %s reachable again", self.path)
        self._failing = False
        return True

    def feed(self) -> bool:
        return self._send(Message("feed", self.name))

    def disarm(self) -> bool:
        return self._send(Message("disarm", self.name))

    def close(self) -> None:
        self.sock.close()
