"""Which clients are armed and when each was last fed: the state both watchdogs share."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.fencing.protocol import Message


@dataclass
class Feeders:
    timeout: float  # seconds a client may go unfed
    last: dict[str, float] = field(default_factory=dict)  # armed client -> last feed

    def handle(self, message: Message, now: float) -> str | None:
        """Apply a message; returns a line worth logging when the arming changed."""
        if message.verb == "feed":
            armed = message.client not in self.last
            self.last[message.client] = now
            return f"{message.client} armed" if armed else None
        if self.last.pop(message.client, None) is not None:
            return f"{message.client} disarmed"
        return None

    def stale(self, now: float) -> list[str]:
        return sorted(c for c, t in self.last.items() if now - t > self.timeout)

    def forget(self, clients: list[str]) -> None:
        for client in clients:
            self.last.pop(client, None)
