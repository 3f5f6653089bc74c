"""`corral watchdog-mux`: several local clients share the kernel watchdog device.

The device (`/dev/watchdog`, e.g. softdog) resets the host unless written to within its
timeout. The mux writes to it every `interval` seconds while every armed client was fed within
`client_timeout`; one stale client and the mux stops writing, so the kernel resets the host
after its own timeout. Fence time for a hung client is thus client_timeout + device timeout.
A clean shutdown writes 'V' (the magic close) so that closing the device does not reset the
host; the mux dying any other way leaves the device armed, which is the point.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from types import FrameType

from corral.fencing.feeders import Feeders
from corral.fencing.protocol import MAX_MESSAGE, parse

log = logging.getLogger("corral.fencing.mux")
MAGIC_CLOSE = b"V"
KEEPALIVE = b"\0"  # any byte but 'V' feeds the device


class WatchdogMux:
    def __init__(self, device: Path, sock: socket.socket, client_timeout: float,
                 interval: float = 1.0) -> None:
        if interval >= client_timeout:
            raise ValueError(f"feed interval {interval}s must be below the client timeout "
                             f"{client_timeout}s")
        self.device = device
        self.sock = sock
        self.feeders = Feeders(client_timeout)
        self.interval = interval
        self.stopping = False
        self.starving: list[str] = []  # clients that keep the device unfed right now
        self.fd = -1

    def open(self) -> None:
        # Opening the device arms it: from here on the host depends on this process.
        self.fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        log.info("opened %s", self.device)

    def feed_device(self) -> None:
        os.write(self.fd, KEEPALIVE)

    def receive(self, until: float) -> None:
        """Handle messages until the monotonic time `until`."""
        while (left := until - time.monotonic()) > 0 and not self.stopping:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except (TimeoutError, InterruptedError):
                continue
            message = parse(data)
            if message is not None and (line := self.feeders.handle(message, time.monotonic())):
                log.info("%s", line)

    def step(self) -> bool:
        """Feed the device if every armed client is fed; True when it was fed."""
        stale = self.feeders.stale(time.monotonic())
        if stale != self.starving:
            if stale:
                log.warning("not feeding %s: %s not fed for %.1fs; the host will be reset",
                            self.device, ", ".join(stale), self.feeders.timeout)
            else:
                log.info("all clients fed again; feeding %s", self.device)
            self.starving = stale
        if stale:
            return False
        self.feed_device()
        return True

    def run(self) -> None:
        self.open()
        try:
            while not self.stopping:
                self.step()
                self.receive(time.monotonic() + self.interval)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd < 0:
            return
        if self.stopping and not self.starving:
            # Magic close: only a deliberate stop with every client fed disarms the device.
            with contextlib.suppress(OSError):
                os.write(self.fd, MAGIC_CLOSE)
            log.info("disarmed %s (magic close)", self.device)
        os.close(self.fd)
        self.fd = -1

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
