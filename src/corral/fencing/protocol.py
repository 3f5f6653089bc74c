"""The feed protocol shared by the lab watchdog and the watchdog mux.

One unix datagram per message, `<verb> <client>`: `feed` arms the client (if needed) and resets
its timer; `disarm` forgets it (a clean stop). Datagrams keep both sides stateless: a client
that restarts simply sends again, and a client that dies sends nothing, which is the point.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Verb = Literal["feed", "disarm"]
VERBS: tuple[Verb, ...] = ("feed", "disarm")
MAX_MESSAGE = 256


@dataclass(frozen=True)
class Message:
    verb: Verb
    client: str

    def encode(self) -> bytes:
        return f"{self.verb} {self.client}".encode()


def parse(data: bytes) -> Message | None:
    """The message in a datagram, or None for anything malformed (ignored, never fatal)."""
    try:
        verb, client = data.decode("ascii").split()
    except (UnicodeDecodeError, ValueError):
        return None
    if verb == "feed":
        return Message("feed", client)
    if verb == "disarm":
        return Message("disarm", client)
    return None


def bind(path: Path) -> socket.socket:
    """A datagram socket at path, replacing a stale one; only root (its owner) may feed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    return sock
