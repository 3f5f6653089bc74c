"""The control-plane bench runs end to end in its smoke mode and prints every section with
figures. Only that: its timings are for reading, not for asserting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+(?:\.\d+)?"


@pytest.fixture(scope="module")
def output() -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "control_plane.py"), "--quick"],
                         capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def test_prints_the_sequential_read_table(output: str) -> None:
    rows = re.findall(rf"^\s+(\d+)\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+{NUMBER}",
                      output, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [0, 30]


def test_prints_each_rate_with_latencies_per_route(output: str) -> None:
    for rate in (50, 200, 500):
        assert f"-- open loop at {rate} req/s" in output
    for route in ("GET /vms/{id}", "GET /nodes", "GET /ha/status", "POST /vms"):
        assert re.search(rf"{re.escape(route)}\s+\d+\s+", output), route
    assert re.search(rf"all admitted p50/p99 {NUMBER} / {NUMBER} ms", output)


def test_prints_manager_etcd_and_memory_figures(output: str) -> None:
    assert re.search(rf"manager at idle: {NUMBER} % of one core", output)
    assert re.search(r"manager passes: (n/a|\d+ in)", output)
    assert len(re.findall(rf"dbSize {NUMBER} MB", output)) == 3
    # Each window's etcd requests, counted by the members: the reads and writes it sent.
    windows = re.findall(r"etcd requests/s over all members: (.*)", output)
    assert len(windows) == 3, windows
    assert all(re.search(r"Range \d+", w) and re.search(r"Txn \d+", w) for w in windows)
    assert all(re.search(r"proposals committed/s \d+", w) for w in windows)
    waits = re.findall(r"waiting for a core, % of the wall time \(threads summed\): (.*)",
                       output)
    assert len(waits) == 3 and all(re.search(r"API \d+", w) for w in waits), waits
    for process in ("etcd e0", "API", "SimulatedHosts", "manager"):
        assert re.search(rf"{process}: \d+ MiB", output), process
