"""The lab's watchdog: `python -m corral.fencing.labdog --node n1 --run-dir ... --socket ...`.

One per simulated host, started by the lab supervisor beside the host's agent. A real host's
watchdog resets the machine; here the machine is the host's QEMU processes, so an unfed
watchdog SIGKILLs them. It is a process of its own so that it works while the agent is frozen.

It speaks the mux's protocol (fencing.protocol): a client arms with `arm` (or its first feed)
and gets the fence time acknowledged, its timeout plus the check tick; it disarms only with an
explicit `disarm` (a clean agent stop), never on silence: an agent that crashed must come back
and feed within the timeout, or its VMs die. After fencing, the client is forgotten until it
feeds again, like a host after its reset. Unlike the mux it stops on SIGTERM whatever is
armed: `lab down` stops it after the agents and then kills the hosts' QEMUs itself.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from corral.fencing.feeders import Feeders
from corral.fencing.protocol import MAX_MESSAGE, Ack, bind, disarmed, parse, reply
from corral.fencing.timing import labdog_fence_time
from corral.qemu.paths import VMPaths
from corral.qemu.process import kill, launched_in, live_pid

log = logging.getLogger("corral.fencing.labdog")
TICK = 0.1  # how often the timer is checked: the fence fires at most this late
SWEEP = 1.0  # the longest a fence keeps killing QEMU processes that are still dying


def host_qemu_pids(run_dir: Path) -> dict[int, int]:
    """vmid -> pid of each live QEMU of the host, from its pidfiles, each checked against
    /proc so that a stale pidfile never gets a recycled pid killed."""
    found: dict[int, int] = {}
    for pidfile in run_dir.glob("*.pid"):
        if not pidfile.stem.isdigit():
            continue
        with contextlib.suppress(ValueError):  # a run dir too deep for a QMP socket
            pid = live_pid(VMPaths(run_dir, int(pidfile.stem)))
            if pid is not None:
                found[int(pidfile.stem)] = pid
    return found


def fence(run_dir: Path) -> dict[int, int]:
    """SIGKILL every QEMU of the host at once (a reset gives no grace either); returns
    vmid -> pid of those that had a pidfile."""
    victims = host_qemu_pids(run_dir)  # for the log; the sweep kills these too
    kill_launched(run_dir)
    return victims


def kill_launched(run_dir: Path, within: float = SWEEP) -> set[int]:
    """SIGKILL every QEMU process of the host, a start in flight included, as a reset does:
    pidfiles alone miss a daemon that has not written its own yet. Sweeps /proc until a
    sweep finds none (a process killed in one sweep may have forked in between), for at
    most `within` seconds. Returns every pid signalled."""
    signalled: set[int] = set()
    deadline = time.monotonic() + within
    while True:
        left = launched_in(run_dir)
        for pid in left:
            kill(pid, signal.SIGKILL)
        signalled |= left
        if not left or time.monotonic() > deadline:
            return signalled
        time.sleep(0.01)


class LabDog:
    def __init__(self, node: str, run_dir: Path, sock: socket.socket, timeout: float) -> None:
        self.node = node
        self.run_dir = run_dir
        self.sock = sock
        self.feeders = Feeders(timeout)
        self.fence = labdog_fence_time(timeout, TICK)
        self.stopping = False

    def handle(self, data: bytes, address: object) -> None:
        message = parse(data)
        if message is None:
            return
        if line := self.feeders.handle(message, time.monotonic()):
            log.info("%s: %s", self.node, line)
        if message.verb == "arm":
            reply(self.sock, address,
                  Ack(message.client, self.fence, self.feeders.timeout).encode())
        elif message.verb == "disarm":
            reply(self.sock, address, disarmed(message.client))

    def step(self) -> None:
        """Take one message if one comes within TICK, then check the timer."""
        self.sock.settimeout(TICK)
        with contextlib.suppress(TimeoutError, InterruptedError):
            self.handle(*self.sock.recvfrom(MAX_MESSAGE))
        stale = self.feeders.stale(time.monotonic())
        if stale:
            victims = fence(self.run_dir)
            log.warning("%s: FENCED: %s not fed for %.1fs; killed QEMU %s", self.node,
                        ", ".join(stale), self.feeders.timeout,
                        ", ".join(f"VM {v} (pid {p})" for v, p in victims.items()) or "(none)")
            self.feeders.forget(stale)

    def run(self) -> None:
        while not self.stopping:
            self.step()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        # A stopped watchdog fences nothing: `lab down` stops it after the agents.
        self.stopping = True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m corral.fencing.labdog")
    p.add_argument("--node", required=True)
    p.add_argument("--run-dir", type=Path, required=True, help="the host's QEMU pidfiles")
    p.add_argument("--socket", type=Path, required=True, help="where clients feed it")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds unfed before fencing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(message)s")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    sock = bind(args.socket)
    dog = LabDog(args.node, args.run_dir, sock, args.timeout)
    signal.signal(signal.SIGTERM, dog.stop)
    signal.signal(signal.SIGINT, dog.stop)
    log.info("%s: watchdog on %s, timeout %gs, fence time %gs, unarmed until a client arms",
             args.node, args.socket, args.timeout, dog.fence)
    try:
        dog.run()
    finally:
        sock.close()
        args.socket.unlink(missing_ok=True)
    if dog.feeders.last:
        log.warning("%s: watchdog stopped with %s armed", args.node,
                    ", ".join(sorted(dog.feeders.last)))
    log.info("%s: watchdog stopped", args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
