"""The lab supervisor with a real 3-member etcd cluster and a dummy child (no agents, no API)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.cluster.models import StorageConfig, StorageType
from corral.cluster.store import RETRYABLE, Store
from corral.host.processes import pid_alive
from corral.lab import faults, procs
from corral.lab.layout import LabLayout, spare_base_port

pytestmark = pytest.mark.integration


def random_layout(root: Path) -> LabLayout:
    # Far from the demo lab's 23800 block, and checked free, so a running lab never collides.
    base = spare_base_port()
    return LabLayout(root, nodes=3, base_port=base, api_port=base + 301)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


@dataclass
class Lab:
    layout: LabLayout
    proc: subprocess.Popen[bytes]

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.layout.supervisor_json.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def pid(self, name: str) -> int | None:
        pid: int | None = self.state().get("children", {}).get(name)
        return pid


@pytest.fixture
def lab(short_tmp: Path) -> Iterator[Lab]:
    layout = random_layout(short_tmp / "lab")
    layout.save()
    layout.logs_dir.mkdir()
    with open(layout.log_path("supervisor"), "ab") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corral.lab.supervisor", str(layout.root),
             "--no-agents", "--no-api", "--extra", "dummy=sleep 1000"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = Lab(layout, proc)
    try:
        wait_for("supervisor ready", lambda: lab.state().get("ready"), 30)
        yield lab
    except Exception:
        print(layout.log_path("supervisor").read_text())
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        procs.terminate(procs.lab_processes(layout), 2)


def test_seeds_storages_and_a_private_token(lab: Lab) -> None:
    layout = lab.layout
    assert layout.token_path.stat().st_mode & 0o777 == 0o600
    token = layout.token_path.read_text().strip()

    async def check() -> None:
        async with Store(layout.client_urls) as store:
            storages = await store.storages()
            assert storages["local"].type is StorageType.DIR
            assert storages["local"].path == "storage/local"
            assert storages["shared"].path == str(layout.shared_dir)
            assert await store.token_valid(token)

    asyncio.run(check())
    assert layout.shared_dir.is_dir()


def test_a_killed_child_is_restarted(lab: Lab) -> None:
    old = lab.pid("dummy")
    assert old and pid_alive(old)
    os.kill(old, signal.SIGKILL)
    new = wait_for("dummy restarted", lambda: (p := lab.pid("dummy")) and p != old and p, 10)
    assert pid_alive(new)
    assert lab.state()["restarts"]["dummy"] == 1
    assert "restarting dummy" in lab.layout.log_path("supervisor").read_text()


def leader(layout: LabLayout, skip: str = "") -> str | None:
    """The name of the member that leads the etcd cluster, asking all but `skip`."""
    for m in layout.etcd_members:
        if m.name == skip:
            continue
        reply = httpx.post(f"{m.client_url}/v3/maintenance/status", json={}, timeout=2).json()
        if reply["leader"] == reply["header"]["member_id"]:
            return m.name
    return None


async def write_through(layout: LabLayout, storage_id: str) -> None:
    async with Store(layout.client_urls, timeout=2) as store:
        # Losing the leader costs one election (about a second), as any client would see.
        deadline = time.monotonic() + 10
        while True:
            try:
                await store.put_storage(StorageConfig(id=storage_id, type=StorageType.DIR,
                                                      path="x"))
                break
            except RETRYABLE:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert storage_id in await store.storages()


async def test_etcd_serves_with_its_leader_frozen(lab: Lab) -> None:
    # A frozen member is down for the cluster but alive for the supervisor: no restart hides it.
    name = leader(lab.layout)
    assert name
    victim = lab.pid(f"{name}-etcd")
    assert victim
    os.kill(victim, signal.SIGSTOP)
    try:
        await write_through(lab.layout, "frozen")
        assert leader(lab.layout, skip=name) not in (None, name)
    finally:
        os.kill(victim, signal.SIGCONT)


async def test_etcd_serves_with_one_member_killed(lab: Lab) -> None:
    victim = lab.pid("n2-etcd")
    assert victim
    os.kill(victim, signal.SIGKILL)
    await write_through(lab.layout, "after")

    def restarted() -> bool:
        return lab.state()["restarts"]["n2-etcd"] == 1 and lab.pid("n2-etcd") not in (None, victim)

    wait_for("n2-etcd restarted", restarted, 10)


def test_sigterm_stops_everything(lab: Lab, short_tmp: Path) -> None:
    # A stand-in for a VM: a "qemu" binary with a pidfile in n1's run dir, detached like
    # QEMU's -daemonize, so only the pidfile leads to it.
    fake = short_tmp / "qemu-system-x86_64"
    shutil.copy("/bin/sleep", fake)
    qemu = subprocess.Popen([str(fake), "1000"], start_new_session=True)
    run = lab.layout.run_dir(1)
    run.mkdir(parents=True)
    (run / "100.pid").write_text(f"{qemu.pid}\n")

    pids = [p for p in lab.state()["children"].values() if p]
    assert len(pids) == 4  # three etcd members and the dummy
    lab.proc.send_signal(signal.SIGTERM)
    assert lab.proc.wait(30) == 0
    assert qemu.wait(10) is not None
    assert not [p for p in pids if pid_alive(p)]
    assert not lab.layout.supervisor_json.exists()
    assert procs.lab_processes(lab.layout) == []


def test_faults_find_a_hosts_children_of_the_labs_own_plan(lab: Lab) -> None:
    """kill-node, start-node and kill-etcd-leader by the hosts the supervisor publishes."""
    state = lab.state()
    assert state["hosts"] == {"n1-etcd": "n1", "n2-etcd": "n2", "n3-etcd": "n3", "dummy": None}
    old = lab.pid("n3-etcd")
    killed = faults.kill_node(lab.layout, "n3")
    assert killed.processes == {"n3-etcd": old}
    assert not pid_alive(old)
    back = faults.start_node(lab.layout, "n3")
    assert set(back) == {"n3-etcd"} and back["n3-etcd"] != old

    wait_for("an etcd leader", lambda: faults.etcd_leader(lab.layout), 10)
    pids = {n: lab.pid(f"{n}-etcd") for n in lab.layout.node_names}
    node, pid = faults.kill_etcd_leader(lab.layout)
    assert pid == pids[node]
    wait_for("the leader's member restarted",
             lambda: lab.pid(f"{node}-etcd") not in (None, pid), 10)
