"""What the interactive serial console decides, over plain bytes: the tail a new watcher sees
first, the bounded backlog of a watcher that reads slower than the guest writes, and the
close codes (with their reasons) that the agent, the API and the clients share.

A VM's QEMU serves its serial port on one unix socket and takes one client at a time, so the
agent holds one connection per VM and fans its output out to every watcher: the guest is
never slowed by a watcher, and a watcher that falls too far behind is dropped (it reconnects
and starts again from the tail).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

TAIL_BYTES = 16 * 1024  # what a new watcher sees first, so its screen is not empty
MAX_BACKLOG_BYTES = 1024 * 1024  # unsent output per watcher before it is dropped
MAX_INPUT_BYTES = 64 * 1024  # one message of keystrokes (a paste) at most
MAX_REASON_BYTES = 123  # what a WebSocket close frame can carry


@dataclass(frozen=True)
class Close:
    code: int
    reason: str

    def clipped(self) -> Close:
        """The same close, its reason cut (on a character boundary) to what a frame holds."""
        raw = self.reason.encode()
        if len(raw) <= MAX_REASON_BYTES:
            return self
        return Close(self.code, raw[:MAX_REASON_BYTES].decode(errors="ignore"))


# WebSocket close codes: 1000-1015 are the protocol's, 4000-4999 the application's. A client
# reconnects after ENDED (the QEMU it watched is gone: stopped, or the VM moved) and after
# TOO_SLOW, if the VM still runs; it never retries UNAUTHORIZED, NOT_FOUND or NOT_RUNNING.
NORMAL = 1000
POLICY_VIOLATION = 1008  # a bad or missing credential
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
UNAUTHORIZED = 4401
NOT_FOUND = 4404
NOT_RUNNING = 4409  # the VM does not run (here): nothing to attach to
UNREADABLE = 4422  # the VM's placement does not decode: where it runs is not known
ENDED = 4410  # the QEMU this console was attached to went away
UNREACHABLE = 4502  # the API cannot reach the VM's agent, or the agent its QEMU

RETRYABLE = frozenset({ENDED, TRY_AGAIN_LATER, UNREACHABLE, INTERNAL_ERROR})


def too_slow() -> Close:
    return Close(TRY_AGAIN_LATER, "this console fell too far behind the guest's output; "
                                  "reconnect to go on")


def ended(vmid: int, node: str) -> Close:
    return Close(ENDED, f"VM {vmid}'s QEMU on {node} went away (stopped, or moved to another "
                        "host)")


def not_running_here(vmid: int, node: str) -> Close:
    return Close(NOT_RUNNING, f"VM {vmid} does not run on {node}")


def whole_lines(tail: bytes, cut: bool) -> bytes:
    """The tail from its first whole line when it was `cut` from a longer log: a screen that
    starts mid-line (or mid-character, or mid-escape sequence) looks broken."""
    if not cut:
        return tail
    newline = tail.find(b"\n")
    return tail[newline + 1:] if 0 <= newline < len(tail) - 1 else tail


class Recent:
    """The last `limit` bytes of output, which a watcher that arrives later sees first."""

    def __init__(self, seed: bytes = b"", limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._data = bytearray(seed[-limit:] if limit else b"")

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > self.limit:
            del self._data[: len(self._data) - self.limit]

    def tail(self) -> bytes:
        """From the first whole line once the buffer has dropped older output."""
        data = bytes(self._data)
        return whole_lines(data, cut=len(data) >= self.limit)


class Backlog:
    """One watcher's output not sent yet. `push` says False once it holds more than `limit`
    bytes: the watcher is too slow, and is dropped rather than slowing everyone down."""

    def __init__(self, limit: int = MAX_BACKLOG_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._chunks: deque[bytes] = deque()

    def push(self, chunk: bytes) -> bool:
        if chunk:
            self._chunks.append(chunk)
            self.size += len(chunk)
        return self.size <= self.limit

    def take(self) -> bytes:
        """Everything queued, as one chunk (fewer, larger frames for a watcher behind)."""
        data = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return data

    def __bool__(self) -> bool:
        return self.size > 0


def input_bytes(text: str | None, data: bytes | None) -> bytes:
    """A client's keystrokes, from a text frame (UTF-8, as a browser terminal sends them) or
    a binary one (raw bytes, as `corral vm console -i` sends them)."""
    if data is not None:
        return data
    return (text or "").encode()
