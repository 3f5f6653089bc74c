"""Whether an etcd member's data dir ever got past its first start. Pure reading, stdlib only.

etcd writes its WAL (a CRC record, the metadata, an empty snapshot marker) before raft has
saved a single entry. A member killed in that window, a power loss during a host's first
start, restarts from a WAL with an empty voter set: it never elects a leader, even alone, and
logs "publish error: request timed out" forever. Such a WAL holds no entry and no raft state,
so it carries nothing: starting afresh from the same flags is what the first start did.

The WAL format (etcd's wal package): each record is an 8-byte little-endian length field (the
length in the low 56 bits; with the top bit set, the padding to 8 bytes in the top byte's low
3 bits), then a walpb.Record protobuf (1: type, 2: crc, 3: data). A zero length field is the
end of the preallocated space.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

# walpb record types.
METADATA, ENTRY, STATE, CRC, SNAPSHOT = 1, 2, 3, 4, 5
KNOWN_TYPES = frozenset({METADATA, ENTRY, STATE, CRC, SNAPSHOT})
# Far above any record etcd writes (a request is at most a few MiB): a larger length field is
# damage, and reading it would take that much memory.
MAX_RECORD = 256 << 20


class WalUnreadable(ValueError):
    """Not a WAL this reader understands: nothing may be concluded from it."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise WalUnreadable("a varint runs past its record")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _record_type(record: bytes) -> int:
    at, kind = 0, None
    while at < len(record):
        key, at = _varint(record, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(record, at)
            if field == 1:
                kind = value
        elif wire == 2:
            length, at = _varint(record, at)
            at += length
        else:
            raise WalUnreadable(f"wire type {wire} in a record")
    if at != len(record) or kind not in KNOWN_TYPES:
        raise WalUnreadable(f"a record of type {kind}")
    return kind


class Record(NamedTuple):
    kind: int
    end: int  # the offset just past the record and its padding


def read_records(wal: BinaryIO) -> Iterator[Record]:
    """Each record of one WAL file, in order, up to its end."""
    at = 0
    while len(head := wal.read(8)) == 8:
        (field,) = struct.unpack("<Q", head)
        if field == 0:
            return
        length = field & ((1 << 56) - 1)
        pad = (field >> 56) & 0x7 if field >> 63 else 0
        if length > MAX_RECORD:
            raise WalUnreadable(f"a record of {length} bytes at offset {at}")
        record = wal.read(length + pad)
        if len(record) != length + pad:
            raise WalUnreadable(f"the record at offset {at} runs past the end of the file")
        at += 8 + length + pad
        yield Record(_record_type(record[:length]), at)


def never_bootstrapped(data_dir: Path) -> bool:
    """True when data_dir holds a member whose WAL files all read to their end without one
    entry or raft state record, and no raft snapshot: nothing was ever committed here. False
    when there is no WAL, when anything in it was saved, or when it cannot be read."""
    member = data_dir / "member"
    wals = sorted((member / "wal").glob("*.wal"))
    if not wals or any((member / "snap").glob("*.snap")):
        return False
    seen: set[int] = set()
    try:
        for path in wals:
            with path.open("rb") as wal:
                for kind, _ in read_records(wal):
                    if kind in (ENTRY, STATE):
                        return False  # raft saved something: the usual case, read no further
                    seen.add(kind)
    except (OSError, WalUnreadable):
        return False
    return METADATA in seen
