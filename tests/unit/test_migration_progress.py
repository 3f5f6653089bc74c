"""Migration figures from QEMU's reports, the bandwidth syntax and task parameters."""

from __future__ import annotations

import pytest

from corral.migration.params import MigrateParams, parse_bwlimit
from corral.migration.progress import describe, fraction, stats, with_rate
from corral.migration.record import MigrationRecord, Phase, Stats

MIB = 1024 * 1024


def test_bwlimit_syntax() -> None:
    assert parse_bwlimit(None) is None
    assert parse_bwlimit("200M") == 200
    assert parse_bwlimit("1G") == 1024
    assert parse_bwlimit("50") == 50
    assert parse_bwlimit(" 2048K ") == 2
    assert parse_bwlimit(30) == 30
    for bad in ("fast", "0", "-5", "0.5M", True):
        with pytest.raises(ValueError):
            parse_bwlimit(bad)


def test_the_managers_params_are_accepted() -> None:
    p = MigrateParams.model_validate({"target": "n2", "with_local_disks": True, "origin": "n1"})
    assert p.bwlimit_mbps is None and p.origin == "n1" and p.stall_timeout > 0


def test_stats_add_ram_and_mirror_jobs_and_keep_finished_disks() -> None:
    reply = {"status": "active", "ram": {"total": 100 * MIB, "transferred": 30 * MIB,
                                         "remaining": 70 * MIB}}
    jobs = [{"device": "mig-mirror0", "len": 64 * MIB, "offset": 64 * MIB},
            {"device": "other-job", "len": 1, "offset": 1}]
    s = stats(reply, jobs, "mig-mirror", 2.0)
    assert (s.ram_total, s.disk_total, s.transferred) == (100 * MIB, 64 * MIB, 94 * MIB)
    later = stats(reply | {"ram": {"total": 100 * MIB, "transferred": 50 * MIB,
                                   "remaining": 50 * MIB}}, [], "mig-mirror", 3.0, s)
    assert later.disk_transferred == 64 * MIB  # the job ended; its bytes still count
    assert with_rate(later, s).rate == pytest.approx(20 * MIB)
    assert 0 < fraction(later) < 1 and "MiB/s" in describe(later)


def test_fraction_bounds() -> None:
    assert fraction(Stats()) == 0.0
    assert fraction(Stats(ram_total=10, ram_remaining=0)) == 1.0
    assert fraction(Stats(disk_total=10, disk_transferred=5)) == pytest.approx(0.5, abs=0.1)


def test_record_phases() -> None:
    rec = MigrationRecord(vmid=100, source="n1", target="n2", mode="live", task="a",
                          receive_task="b")
    assert rec.phase is Phase.PREPARING and not rec.phase.final
    assert Phase.COMPLETED.final and Phase.ABORTED.final
