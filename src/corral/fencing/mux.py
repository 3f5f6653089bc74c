"""`corral watchdog-mux`: several local clients share the kernel watchdog device.

At start the mux asks the device for a timeout and reads back the one it really uses; with
its client timeout and tick that gives the fence time it acknowledges to each arming client
(fencing.timing.mux_fence_time). It writes to the device every `interval` seconds while every
armed client was fed within `client_timeout`; one stale client and it stops writing, so the
device resets the host.

Only a client's clean close (`disarm`) disarms it; a client that vanishes stays armed and
keeps the device unfed. Each armed client has a marker file in the state directory, so a
restarted mux guards the same clients (as never fed: it writes to the device again only once
they feed). Stopping:

- no client armed: SIGTERM ends the mux with the magic close, which stops the device;
- clients armed: SIGTERM is refused (logged). The mux keeps running and judging them as
  before, and ends with the magic close once the last one disarmed. Exiting instead would
  close the device without 'V', which the kernel answers with one more keepalive: the host
  would be reset a full device timeout after the exit, later than the acknowledged figure. A
  SIGKILL does exactly that; a mux restarted within the device timeout takes over.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from pathlib import Path
from types import FrameType

from corral.fencing.device import DeviceError, WatchdogDevice
from corral.fencing.feeders import Feeders
from corral.fencing.protocol import MAX_MESSAGE, Ack, disarmed, parse, reply
from corral.fencing.timing import mux_fence_time

log = logging.getLogger("corral.fencing.mux")


class MuxError(Exception):
    """The mux cannot state a fence time it can keep."""


class WatchdogMux:
    def __init__(self, device: WatchdogDevice, sock: socket.socket, client_timeout: float,
                 interval: float = 1.0, device_timeout: int = 10,
                 state_dir: Path | None = None) -> None:
        if interval >= client_timeout:
            raise ValueError(f"feed interval {interval}s must be below the client timeout "
                             f"{client_timeout}s")
        self.device = device
        self.sock = sock
        self.feeders = Feeders(client_timeout, state_dir)
        self.interval = interval
        self.asked_timeout = device_timeout
        self.device_timeout = 0  # what the device uses, once read back
        self.fence = 0.0  # acknowledged: last feed -> reset, at the latest
        self.stopping = False
        self.refused_stop = False
        self.starving: list[str] = []  # clients that keep the device unfed right now
        self.opened = False

    def start(self) -> None:
        restored = self.feeders.restore()
        if restored:
            log.warning("clients armed before this start: %s; the device is fed again once "
                        "they feed", ", ".join(restored))
        # Opening the device arms it: from here on the host depends on this process.
        self.device.open()
        self.opened = True
        try:
            self.device.set_timeout(self.asked_timeout)
        except DeviceError as e:
            log.warning("%s refused the timeout %ds (%s); using its own", self.device.name,
                        self.asked_timeout, e)
        try:
            self.device_timeout = self.device.get_timeout()
        except DeviceError as e:
            raise MuxError(f"cannot read the timeout of {self.device.name}: {e}") from e
        if not self.interval < self.device_timeout:
            raise MuxError(f"{self.device.name} uses a timeout of {self.device_timeout}s: the "
                           f"feed interval {self.interval:g}s must be below it")
        self.fence = mux_fence_time(self.feeders.timeout, self.interval, self.device_timeout)
        log.info("opened %s: timeout %ds (asked %ds); client timeout %gs, interval %gs: a "
                 "client is fenced at most %gs after its last feed", self.device.name,
                 self.device_timeout, self.asked_timeout, self.feeders.timeout, self.interval,
                 self.fence)

    def handle(self, data: bytes, address: object) -> None:
        message = parse(data)
        if message is None:
            return
        if line := self.feeders.handle(message, time.monotonic()):
            log.info("%s", line)
        if message.verb == "arm":
            reply(self.sock, address,
                  Ack(message.client, self.fence, self.feeders.timeout).encode())
        elif message.verb == "disarm":
            reply(self.sock, address, disarmed(message.client))

    def receive(self, until: float) -> None:
        """Handle messages until the monotonic time `until`."""
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, address = self.sock.recvfrom(MAX_MESSAGE)
            except (TimeoutError, InterruptedError):
                continue
            self.handle(data, address)

    def step(self) -> bool:
        """Feed the device if every armed client is fed; True when it was fed."""
        stale = self.feeders.stale(time.monotonic())
        if stale != self.starving:
            if stale:
                log.warning("not feeding %s: %s not fed for %gs; the host will be reset",
                            self.device.name, ", ".join(stale), self.feeders.timeout)
            else:
                log.info("all clients fed again; feeding %s", self.device.name)
            self.starving = stale
        if stale:
            return False
        self.device.keepalive()
        return True

    def may_stop(self) -> bool:
        if not self.stopping:
            return False
        if self.feeders.last:
            if not self.refused_stop:
                log.warning("stop refused: %s armed; the mux runs until they disarm (a clean "
                            "stop of the agent, with no VM left running)",
                            ", ".join(sorted(self.feeders.last)))
                self.refused_stop = True
            return False
        return True

    def run(self) -> None:
        try:
            self.start()
            while not self.may_stop():
                self.step()
                self.receive(time.monotonic() + self.interval)
        finally:
            self.close()

    def close(self) -> None:
        if not self.opened:
            return
        self.opened = False
        if self.feeders.last:
            # Armed clients (only after an error: a stop waits for them): leave the device
            # running, so the host is still reset unless a new mux takes over in time.
            self.device.close()
            log.warning("closed %s without the magic close: %s armed", self.device.name,
                        ", ".join(sorted(self.feeders.last)))
            return
        try:
            self.device.magic_close()
            log.info("disarmed %s (magic close)", self.device.name)
        except OSError as e:
            self.device.close()
            log.error("magic close of %s failed (%s): it stays armed", self.device.name, e)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
