"""Real agents on one real etcd: a small cluster of host processes for integration tests.

Import the fixture into a test module: `from agents import Cluster, cluster_fixture`; tests
then take it as the parameter `c`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.cluster.models import StorageConfig, StorageType, Task
from corral.cluster.store import Store

T = TypeVar("T")


class AgentProc:
    def __init__(self, etcd: str, data_dir: Path, images_dir: Path, node: str) -> None:
        self.node = node
        self.data_dir = data_dir
        self.argv = [
            sys.executable, "-m", "corral.cli.main", "agent", "run", "--node", node,
            "--data-dir", str(data_dir), "--images-dir", str(images_dir), "--etcd", etcd,
            "--accel", "tcg", "--lease-ttl", "4",
            "--recent-interval", "5",  # tests wait for the record: not 30 s a time
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "agent.log").open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(15)

    def stop(self) -> None:
        slow = False
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                # Killed, so that it cannot take the next test's tasks (they share etcd and
                # host names); the test still fails below, naming the slow stop.
                self.proc.kill()
                self.proc.wait(15)
                slow = True
        # QEMU and qemu-nbd outlive agents on purpose; a test must not leave them behind.
        for pidfile in self.run_dir.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        if slow:
            raise AssertionError(f"the agent of {self.node} did not stop within 30 s of "
                                 f"SIGTERM (see {self.data_dir / 'agent.log'})")


async def wait_for(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0,
                   what: str = "condition") -> T:
    """check's first true value (a None or other false one means: not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Cluster:
    store: Store
    root: Path
    agents: dict[str, AgentProc] = field(default_factory=dict)

    def serial(self, node: str, vmid: int) -> str:
        path = self.agents[node].run_dir / f"{vmid}.serial.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def heartbeats(self, node: str, vmid: int) -> list[int]:
        return [int(line.split()[1]) for line in self.serial(node, vmid).splitlines()
                if line.startswith("corral-heartbeat ") and line.split()[1].isdigit()]

    def volume(self, node: str, name: str) -> Path:
        return self.agents[node].data_dir / "storage/local" / name

    def shared(self, name: str) -> Path:
        return self.root / "shared" / name

    async def queue(self, kind: str, vmid: int, node: str, **params: Any) -> str:
        task = Task(id=uuid.uuid4().hex[:16], kind=kind, node=node, vmid=vmid, params=params)
        await self.store.put_task(task)
        return task.id

    async def wait_task(self, task_id: str, timeout: float = 60.0) -> Task:
        async def finished() -> Task | None:
            t = await self.store.task(task_id)
            return t if t is not None and t.state.finished else None

        return await wait_for(finished, timeout, f"task {task_id}")

    async def run(self, kind: str, vmid: int, node: str = "n1", timeout: float = 60.0,
                  **params: Any) -> Task:
        return await self.wait_task(await self.queue(kind, vmid, node, **params), timeout)


@pytest.fixture(name="c")
async def cluster_fixture(store: Store, etcd_endpoint: str, short_tmp: Path,
                  tiny_images: Path) -> AsyncIterator[Cluster]:
    """Hosts n1 and n2 with a `local` dir storage each and one `shared` shared-dir."""
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="storage/local"))
    (short_tmp / "shared").mkdir()
    await store.put_storage(StorageConfig(id="shared", type=StorageType.SHARED_DIR,
                                          path=str(short_tmp / "shared")))
    c = Cluster(store, short_tmp)
    for name in ("n1", "n2"):
        c.agents[name] = AgentProc(etcd_endpoint, short_tmp / name, tiny_images, name)
        c.agents[name].start()

    async def all_alive() -> bool:
        nodes = await store.nodes()
        return sum(1 for n in nodes if n.alive) == len(c.agents)

    try:
        await wait_for(all_alive, 30, "the agents to register")
        yield c
    finally:
        # Every agent is stopped even when one is slow to: one left running would take the
        # next test's tasks.
        errors: list[AssertionError] = []
        for agent in c.agents.values():
            try:
                agent.stop()
            except AssertionError as e:
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture(name="agent")
async def agent_fixture(store: Store, etcd_endpoint: str, short_tmp: Path,
                        tiny_images: Path) -> AsyncIterator[AgentProc]:
    """One host, n1, with a `local` dir storage: its agent registered."""
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="storage/local"))
    proc = AgentProc(etcd_endpoint, short_tmp / "n1", tiny_images, "n1")
    proc.start()

    async def alive() -> bool:
        node = await store.node("n1")
        return node is not None and node.alive

    try:
        await wait_for(alive, 30, "the agent to register")
        yield proc
    finally:
        proc.stop()
