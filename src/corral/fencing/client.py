"""The agent's side of the watchdog: one datagram per message, never blocking the agent for
long. The socket is bound to an abstract address (autobind) so the watchdog can answer."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from corral.fencing.protocol import MAX_MESSAGE, Ack, Message, parse_ack, valid_client

log = logging.getLogger(__name__)
ARM_RESEND = 0.5  # seconds between `arm` datagrams while no acknowledgement came


class WatchdogClient:
    def __init__(self, path: Path, name: str) -> None:
        if not valid_client(name):
            raise ValueError(f"watchdog client name {name!r}: letters, digits, '.', '_', '-'")
        self.path = path
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("")  # Linux autobind: an abstract address the watchdog answers to
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

    def _drain(self) -> None:
        """Drop replies nobody waits for (`disarmed`, late acknowledgements)."""
        while True:
            try:
                self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return

    def arm(self, wait: float) -> Ack | None:
        """Arm and wait at most `wait` seconds for the acknowledgement, sending again every
        ARM_RESEND (the watchdog may still be starting). None: not known to be armed — though
        the watchdog may have armed it all the same, so keep feeding."""
        self._drain()
        deadline = time.monotonic() + wait
        try:
            while (left := deadline - time.monotonic()) > 0:
                self._send(Message("arm", self.name))
                resend_at = time.monotonic() + min(left, ARM_RESEND)
                while (now := time.monotonic()) < resend_at:
                    self.sock.settimeout(resend_at - now)
                    try:
                        ack = parse_ack(self.sock.recv(MAX_MESSAGE))
                    except (TimeoutError, InterruptedError):
                        break
                    if ack is not None and ack.client == self.name:
                        return ack
            return None
        finally:
            self.sock.setblocking(False)

    def feed(self) -> bool:
        return self._send(Message("feed", self.name))

    def disarm(self) -> bool:
        return self._send(Message("disarm", self.name))

    def close(self) -> None:
        self.sock.close()
