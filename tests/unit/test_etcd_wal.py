"""Reading an etcd WAL to learn whether its member ever got past its first start. Files built
here in etcd's framing; `tests/integration/test_etcd_launch.py` reads the ones etcd writes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from corral.host.etcd_launch import DISCARDED, clear_unbootstrapped, data_dir_of
from corral.host.etcd_wal import (
    CRC,
    ENTRY,
    METADATA,
    SNAPSHOT,
    STATE,
    WalUnreadable,
    never_bootstrapped,
    read_records,
)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def record(kind: int, data: bytes = b"", crc: int = 0x1234) -> bytes:
    """One framed record: walpb.Record{type, crc, data}, padded to 8 bytes as etcd pads."""
    body = b"\x08" + varint(kind) + b"\x10" + varint(crc)
    if data:
        body += b"\x1a" + varint(len(data)) + data
    pad = (8 - len(body) % 8) % 8
    field = len(body) | ((0x80 | pad) << 56 if pad else 0)
    return struct.pack("<Q", field) + body + b"\0" * pad


FIRST_START = record(CRC) + record(METADATA, b"\x08\x01\x10\x02") + record(SNAPSHOT, b"")
PREALLOCATED = b"\0" * 4096


def member(tmp: Path, *wals: bytes, snap: bool = False) -> Path:
    (tmp / "member" / "wal").mkdir(parents=True)
    (tmp / "member" / "snap").mkdir()
    for i, data in enumerate(wals):
        (tmp / "member" / "wal" / f"{i:016x}-{0:016x}.wal").write_bytes(data)
    if snap:
        (tmp / "member" / "snap" / "0000000000000002-0000000000000009.snap").write_bytes(b"x")
    return tmp


def test_records_are_read_with_their_padding_up_to_the_zeroed_tail() -> None:
    data = FIRST_START + record(ENTRY, b"e" * 13) + record(STATE, b"s" * 8) + PREALLOCATED
    kinds = [r.kind for r in read_records(io.BytesIO(data))]
    assert kinds == [CRC, METADATA, SNAPSHOT, ENTRY, STATE]
    assert list(read_records(io.BytesIO(data)))[-1].end == len(data) - len(PREALLOCATED)


@pytest.mark.parametrize("damage", [
    record(ENTRY, b"e" * 20)[:-5],  # torn: runs past the end of the file
    record(9),  # a type etcd does not write
    struct.pack("<Q", 1 << 40),  # a length no record has
    struct.pack("<Q", 3) + b"\x08\x02\x15",  # a field of a wire type walpb.Record has not
])
def test_a_damaged_wal_is_unreadable(damage: bytes) -> None:
    with pytest.raises(WalUnreadable):
        list(read_records(io.BytesIO(FIRST_START + damage)))


def test_a_first_start_cut_before_raft_saved_anything_never_bootstrapped(tmp_path: Path) -> None:
    assert never_bootstrapped(member(tmp_path, FIRST_START + PREALLOCATED))


@pytest.mark.parametrize("wals", [
    (FIRST_START + record(ENTRY, b"conf change") + PREALLOCATED,),
    (FIRST_START + record(STATE, b"hard state") + PREALLOCATED,),
    # The entry is in a later segment: every segment is read.
    (FIRST_START + PREALLOCATED, record(CRC) + record(ENTRY, b"put") + PREALLOCATED),
    (FIRST_START + record(ENTRY, b"e" * 20)[:-5],),  # torn: nothing may be concluded
    (record(CRC) + record(SNAPSHOT) + PREALLOCATED,),  # no metadata: not a WAL etcd began
    (b"",),
])
def test_anything_saved_or_unreadable_leaves_the_member_alone(
        tmp_path: Path, wals: tuple[bytes, ...]) -> None:
    assert not never_bootstrapped(member(tmp_path, *wals))


def test_a_raft_snapshot_or_no_wal_leaves_the_member_alone(tmp_path: Path) -> None:
    assert not never_bootstrapped(member(tmp_path / "a", FIRST_START, snap=True))
    assert not never_bootstrapped(member(tmp_path / "b"))
    assert not never_bootstrapped(tmp_path / "none")


@pytest.mark.parametrize(("argv", "found"), [
    (["--name", "n1", "--data-dir", "/var/lib/etcd", "--pre-vote"], "/var/lib/etcd"),
    (["--data-dir=/d"], "/d"),
    (["-data-dir", "/e"], "/e"),
    (["--name", "n1"], None),
    (["--data-dir"], None),
])
def test_the_launcher_finds_etcds_data_dir(argv: list[str], found: str | None) -> None:
    assert data_dir_of(argv) == (Path(found) if found else None)


def test_the_launcher_clears_only_a_never_bootstrapped_member(tmp_path: Path) -> None:
    fresh = member(tmp_path / "fresh", FIRST_START + PREALLOCATED)
    assert clear_unbootstrapped(fresh)
    assert sorted(p.name for p in fresh.iterdir()) == []
    used = member(tmp_path / "used", FIRST_START + record(ENTRY, b"put") + PREALLOCATED)
    before = (used / "member" / "wal" / f"{0:016x}-{0:016x}.wal").read_bytes()
    assert not clear_unbootstrapped(used)
    assert (used / "member" / "wal" / f"{0:016x}-{0:016x}.wal").read_bytes() == before


def test_a_clear_cut_short_leaves_the_whole_member_or_none_and_is_finished_later(
        tmp_path: Path) -> None:
    """The member is moved aside in one rename before it is deleted: what a launcher killed
    while deleting left is removed by the next one, and the member etcd finds is whole."""
    data = member(tmp_path, FIRST_START + record(ENTRY, b"put") + PREALLOCATED)
    half_deleted = data / DISCARDED / "wal"
    half_deleted.mkdir(parents=True)
    (half_deleted / "0.tmp").write_bytes(PREALLOCATED)
    assert not clear_unbootstrapped(data)
    assert sorted(p.name for p in data.iterdir()) == ["member"]
