"""Free TCP ports for listeners started a moment later (etcd members, a migration's QEMU)."""

from __future__ import annotations

import random
import socket
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
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # all taken: any port
        s.bind((host, 0))
        return int(s.getsockname()[1])
