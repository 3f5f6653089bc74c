"""Ports on a host's migration address."""

from __future__ import annotations

import socket


def free_port(host: str) -> int:
    """A TCP port nothing listens on right now at host (the kernel picks it).

    QEMU binds it a moment later; on a busy host another process could take it in between,
    and the migration then fails cleanly and can be retried.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def nbd_uri(host: str, port: int, export: str) -> str:
    return f"nbd://{host}:{port}/{export}"
