"""A host's usage sample says how full the file system of its data directory is (the VMs'
disks live there), as the dashboard's storage gauge reads it."""

from __future__ import annotations

import shutil
from pathlib import Path

from corral.agent.sampler import MB, sample


def test_the_sample_carries_the_data_directory_s_disk_space(tmp_path: Path) -> None:
    found = sample(0, tmp_path)
    disk = shutil.disk_usage(tmp_path)
    assert found.disk_total_mb == disk.total // MB
    assert found.disk_used_mb is not None
    assert 0 < found.disk_used_mb <= found.disk_total_mb
    # Another writer may change the file system between the two reads: near, not equal.
    assert abs(found.disk_used_mb - disk.used // MB) < 1024


def test_without_a_data_directory_it_says_nothing_of_disks() -> None:
    found = sample(0)
    assert found.disk_total_mb is None and found.disk_used_mb is None
