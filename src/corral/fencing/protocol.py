"""The protocol shared by the lab watchdog and the watchdog mux.

One unix datagram per message, ASCII words separated by spaces. A client sends:

    arm <client>       arm (or re-arm) and start its timer; always acknowledged
    feed <client>      reset its timer; arms a client the watchdog does not know yet
    disarm <client>    the clean close: forget it (the only way to disarm)

The watchdog answers to the sender's address (a client binds one to hear it):

    armed <client> <fence> <timeout>   armed; <fence>: seconds from the client's last feed to
                                       the fence at the latest (the figure the host publishes);
                                       <timeout>: seconds the client may go unfed
    disarmed <client>

A client that gets no `armed` does not know it is armed and publishes no fence time. A
client that dies sends nothing and stays armed, so its host is fenced: there is no
connection whose end could be taken for a clean close. A feed from an unknown client arms it
(say after its watchdog restarted without its state): the error is then on the side of a
fence, never of an unfed client taken for disarmed. Anything malformed (unknown verb, extra
words, a client name that is not a short plain word, a bad number) is ignored, never fatal.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Verb = Literal["arm", "feed", "disarm"]
MAX_MESSAGE = 256
# A client name is also a marker file name in the mux's state directory; room for
# "agent-" and a 63-character host name.
CLIENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


@dataclass(frozen=True)
class Message:
    verb: Verb
    client: str

    def encode(self) -> bytes:
        return f"{self.verb} {self.client}".encode()


@dataclass(frozen=True)
class Ack:
    """The watchdog's answer to `arm`."""

    client: str
    fence: float  # seconds from the client's last feed to its host's fence, at the latest
    timeout: float  # seconds the client may go unfed

    def encode(self) -> bytes:
        return f"armed {self.client} {self.fence:.3f} {self.timeout:.3f}".encode()


def valid_client(name: str) -> bool:
    return CLIENT_NAME.fullmatch(name) is not None


def _words(data: bytes) -> list[str] | None:
    try:
        return data.decode("ascii").split()
    except UnicodeDecodeError:
        return None


def parse(data: bytes) -> Message | None:
    """The request in a datagram, or None for anything malformed."""
    words = _words(data)
    if words is None or len(words) != 2 or not valid_client(words[1]):
        return None
    verb, client = words
    if verb == "arm":
        return Message("arm", client)
    if verb == "feed":
        return Message("feed", client)
    if verb == "disarm":
        return Message("disarm", client)
    return None


def parse_ack(data: bytes) -> Ack | None:
    """An `armed` reply, or None for anything else (a `disarmed`, garbage)."""
    words = _words(data)
    if words is None or len(words) != 4 or words[0] != "armed" or not valid_client(words[1]):
        return None
    try:
        fence, timeout = float(words[2]), float(words[3])
    except ValueError:
        return None
    if not (math.isfinite(fence) and math.isfinite(timeout) and 0 < timeout <= fence):
        return None
    return Ack(words[1], fence, timeout)


def disarmed(client: str) -> bytes:
    return f"disarmed {client}".encode()


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


def reply(sock: socket.socket, address: object, data: bytes) -> None:
    """Answer a sender if it has an address; never block or fail the watchdog on it."""
    if not address:  # an unbound client: it does not listen
        return
    with contextlib.suppress(OSError):
        sock.sendto(data, socket.MSG_DONTWAIT, address)  # type: ignore[call-overload]
