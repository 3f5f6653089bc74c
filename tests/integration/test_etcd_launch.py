"""A host's etcd starts through `corral.host.etcd_launch`, with a real etcd: a member cut
during its first start comes back by itself, and a member with data keeps it."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.cluster.health import healthy
from corral.host.etcd_wal import ENTRY, METADATA, never_bootstrapped, read_records
from corral.lab.etcd import EtcdMember, free_port


class Member:
    """One etcd member on loopback, started (and restarted) by the test."""

    def __init__(self, root: Path) -> None:
        self.etcd = EtcdMember("n1", root / "etcd", free_port(), free_port())
        self.logs = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, launcher: bool = True) -> None:
        prefix = [sys.executable, "-m", "corral.host.etcd_launch"] if launcher else []
        self.starts += 1
        log = (self.logs / f"etcd-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen([*prefix, *self.etcd.command([self.etcd])],
                                     stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return (self.logs / f"etcd-{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def healthy_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if healthy(self.etcd.client_url):
                return True
            time.sleep(0.2)
        return False

    def put(self, key: str, value: str) -> None:
        r = httpx.post(f"{self.etcd.client_url}/v3/kv/put", timeout=5, json={
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value.encode()).decode()})
        r.raise_for_status()

    def get(self, key: str) -> str | None:
        r = httpx.post(f"{self.etcd.client_url}/v3/kv/range", timeout=5,
                       json={"key": base64.b64encode(key.encode()).decode()})
        r.raise_for_status()
        kvs = r.json().get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    def wal(self) -> Path:
        (path,) = (self.etcd.data_dir / "member" / "wal").glob("*.wal")
        return path


@pytest.fixture
def member(short_tmp: Path) -> Iterator[Member]:
    m = Member(short_tmp)
    yield m
    if m.proc is not None and m.proc.poll() is None:
        m.kill()


def cut_to_first_start(wal: Path) -> None:
    """Leave the WAL as a kill in the first start's window leaves it: the records etcd writes
    when it creates the WAL (CRC, metadata, snapshot marker), then the zeroed preallocation;
    the backend it opens next is empty then."""
    with wal.open("r+b") as f:
        records = list(read_records(f))
        first_entry = next(i for i, r in enumerate(records) if r.kind == ENTRY)
        assert first_entry and records[first_entry - 1].kind != ENTRY
        cut = records[first_entry - 1].end
        f.seek(cut)
        f.write(b"\0" * (records[-1].end - cut))
    (wal.parent.parent / "snap" / "db").unlink()
    assert never_bootstrapped(wal.parent.parent.parent)


def test_a_member_cut_during_its_first_start_starts_afresh(member: Member) -> None:
    member.start()
    assert member.healthy_within(20), member.log()
    member.kill()
    cut_to_first_start(member.wal())

    # etcd alone never gets a leader from such a WAL: this is the state the launcher mends.
    member.start(launcher=False)
    assert not member.healthy_within(3)
    member.kill()

    member.start()
    assert member.healthy_within(20), member.log()
    assert "holds a WAL without a single entry" in member.log()
    kinds = {r.kind for r in read_records(member.wal().open("rb"))}
    assert {METADATA, ENTRY} <= kinds
    member.put("/corral/x", "1")
    assert member.get("/corral/x") == "1"


def test_a_member_with_data_keeps_it_across_a_kill(member: Member) -> None:
    member.start()
    assert member.healthy_within(20), member.log()
    member.put("/corral/vms/100/config", "kept")
    member.kill()
    inode = member.wal().stat().st_ino

    member.start()
    assert member.healthy_within(20), member.log()
    assert member.get("/corral/vms/100/config") == "kept"
    assert member.wal().stat().st_ino == inode
    assert "without a single entry" not in member.log()
