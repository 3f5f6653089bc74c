"""Free TCP ports for listeners started a moment later (etcd members, a migration's QEMU)."""

from __future__ import annotations

import random
import socket
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000  # below: the well-known and registered services people run
TRIES = 200


def ephemeral_range(path: Path = EPHEMERAL_RANGE) -> tuple[int, int]:
    """The ports the kernel hands out as source ports of outgoing connections."""
    try:
        low, high = (int(p) for p in path.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def candidate_ports(ephemeral: tuple[int, int]) -> range:
    low, high = ephemeral
    return range(LOWEST, low) if low - LOWEST >= 1000 else range(high + 1, 65536)


def bindable(host: str, port: int) -> bool:
    """Whether nothing holds port at host right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now at host, outside the ephemeral range.

    The listener binds it a moment later. A port the kernel picked (bind to 0) comes from the
    ephemeral range, and any outgoing connection may take it as its source port in between:
    an etcd member then fails with "address already in use". Outside that range only another
    listener can, and the random pick makes two callers meeting on one port unlikely.
    """
    ports = candidate_ports(ephemeral_range())
    for _ in range(TRIES):
        port = random.choice(ports)
        if bindable(host, port):
            return port
    return kernel_port(host)  # all taken: any port


def kernel_port(host: str) -> int:
    """A port the kernel picks (from its ephemeral range) that nothing listens on at host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PortRange:
    """Ports a host's listeners may take, both ends included ("60000-60099"): what a firewall
    between hosts lets through."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """ValueError, saying what is wrong, unless text is LOW-HIGH within 1024-65535."""
        low_text, sep, high_text = text.strip().partition("-")
        if not sep or not low_text.strip().isdigit() or not high_text.strip().isdigit():
            raise ValueError(f"must be LOW-HIGH, such as 60000-60099, not {text!r}")
        low, high = int(low_text), int(high_text)
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"must lie within 1024-65535 with LOW <= HIGH, not {text!r}")
        return cls(low, high)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def ports(self) -> range:
        return range(self.low, self.high + 1)


def free_port_in(host: str, ports: PortRange, skip: Container[int] = ()) -> int | None:
    """A port of `ports` that nothing listens on at host right now and is not in `skip`, tried
    in random order (two hosts' or two receives' picks rarely meet); None when none is."""
    candidates = [p for p in ports.ports() if p not in skip]
    random.shuffle(candidates)
    return next((port for port in candidates if bindable(host, port)), None)
