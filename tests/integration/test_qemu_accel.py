"""The accelerator probe: a real boot decides, once per machine boot."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from corral.qemu.accel import BOOT_ID, probe_accel

pytestmark = pytest.mark.integration


def test_probe_boots_once_and_every_host_of_the_machine_reuses_it(
    tiny_images: Path, short_tmp: Path
) -> None:
    machine = short_tmp / "machine"
    first = probe_accel(tiny_images, short_tmp / "n1", machine_dir=machine)
    assert first in ("kvm", "tcg")
    cached = json.loads((machine / "accel.json").read_text())
    assert cached == {"boot_id": BOOT_ID.read_text().strip(), "accel": first}
    start = time.monotonic()
    assert probe_accel(tiny_images, short_tmp / "n2", machine_dir=machine) == first
    assert time.monotonic() - start < 1.0, "a second host probed again"
    assert not list((short_tmp / "n1").glob("probe*")), "the probe left files behind"


def test_an_answer_from_an_earlier_boot_is_not_trusted(tiny_images: Path,
                                                        short_tmp: Path) -> None:
    machine = short_tmp / "machine"
    machine.mkdir()
    (machine / "accel.json").write_text(json.dumps({"boot_id": "another", "accel": "kvm"}))
    accel = probe_accel(tiny_images, short_tmp / "n1", machine_dir=machine)
    assert json.loads((machine / "accel.json").read_text())["boot_id"] != "another"
    assert accel in ("kvm", "tcg")
