"""The lab's power loss and watchdog reset against a real QEMU caught mid-start: -daemonize
forks twice and the daemon writes its pidfile last, so a kill by pidfile alone lets a start in
flight live on past a "reset" and run the VM on a host the cluster counts as fenced."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_fixtures import qemu_run_dir

from corral.fencing.labdog import fence, host_qemu_pids
from corral.qemu.cmdline import QEMU_BINARY
from corral.qemu.process import launched_in

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir"]  # fixture used by name

# The moment after the start at which the fence comes: from before QEMU's first fork to
# after its daemon is up.
DELAYS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08)


def start_qemu(run_dir: Path, vmid: int) -> subprocess.Popen[bytes]:
    """A QEMU started as the agent starts one (-daemonize, pidfile in the run dir), with no
    machine to boot, so that it is quick and light."""
    return subprocess.Popen(
        [QEMU_BINARY, "-machine", "none", "-display", "none", "-S", "-daemonize",
         "-pidfile", str(run_dir / f"{vmid}.pid")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def other_run_dir(tmp_path: Path) -> Iterator[Path]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    yield run_dir
    fence(run_dir)


def test_a_fence_at_any_moment_of_a_start_leaves_no_qemu(qemu_run_dir: Path) -> None:
    survivors: dict[float, set[int]] = {}
    for n, delay in enumerate(DELAYS):
        launcher = start_qemu(qemu_run_dir, 100 + n)
        time.sleep(delay)
        fence(qemu_run_dir)
        launcher.wait(10)
        time.sleep(0.2)  # long enough for a daemon that escaped to have written its pidfile
        left = launched_in(qemu_run_dir) | set(host_qemu_pids(qemu_run_dir).values())
        if left:
            survivors[delay] = left
    assert not survivors, f"QEMU alive after a fence (delay -> pids): {survivors}"


def test_only_the_hosts_own_qemus_are_found_and_killed(qemu_run_dir: Path,
                                                       other_run_dir: Path) -> None:
    ours = start_qemu(qemu_run_dir, 100)
    theirs = start_qemu(other_run_dir, 100)
    assert ours.wait(10) == 0 and theirs.wait(10) == 0
    mine, other = host_qemu_pids(qemu_run_dir)[100], host_qemu_pids(other_run_dir)[100]
    assert launched_in(qemu_run_dir) == {mine}
    assert launched_in(other_run_dir) == {other}
    assert fence(qemu_run_dir) == {100: mine}
    assert launched_in(qemu_run_dir) == set()
    assert launched_in(other_run_dir) == {other}, "another host's QEMU was touched"
