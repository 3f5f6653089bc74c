"""Usage history end to end: a real agent samples its host and a real tiny guest, the API
(served by uvicorn) relays both histories from it to HTTP clients and the CLI; the archives
outlive an agent restart."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from agents import AgentProc, agent_fixture, wait_for
from api_thread import serving
from typer.testing import CliRunner

from corral.api.app import create_app
from corral.cli.main import app as cli
from corral.cluster.models import Disk, Placement, Task, TaskState, VMConfig
from corral.cluster.store import Store

pytestmark = pytest.mark.integration
__all__ = ["agent_fixture"]  # the `agent` fixture, used by name

TOKEN = "history-token"
MIB = 1024 * 1024
SAMPLE_WAIT = 90.0  # samples come every 10 s; a loaded machine boots the guest slowly


@pytest.fixture
def api_url(etcd_endpoint: str) -> Iterator[str]:
    with serving(create_app([etcd_endpoint])) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(store: Store, api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token(TOKEN)
    async with httpx.AsyncClient(base_url=f"{api_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def corral(api_url: str, *args: str) -> tuple[int, str]:
    env = {"CORRAL_URL": api_url, "CORRAL_TOKEN": TOKEN, "CORRAL_CONFIG": "/nonexistent"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


async def run_task(store: Store, kind: str, vmid: int) -> Task:
    task = Task(id=uuid.uuid4().hex[:16], kind=kind, node="n1", vmid=vmid)
    await store.put_task(task)

    async def finished() -> Task | None:
        t = await store.task(task.id)
        return t if t is not None and t.state.finished else None

    done: Task = await wait_for(finished, 60, f"task {kind}")
    assert done.state is TaskState.OK, done.error
    return done


async def usage(api: httpx.AsyncClient, path: str, range_: str = "hour") -> dict[str, Any]:
    r = await api.get(path, params={"range": range_})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def figures(body: dict[str, Any], metric: str) -> dict[int, float]:
    """Slot start time -> average, for the slots that have one."""
    start, step = body["start"], body["step_seconds"]
    return {start + i * step: v for i, v in enumerate(body["metrics"][metric]["avg"])
            if v is not None}


async def test_the_agent_keeps_host_and_vm_history_and_the_api_relays_it(
        store: Store, agent: AgentProc, api: httpx.AsyncClient, api_url: str) -> None:
    cfg = VMConfig(vmid=140, name="used", memory_mb=64, cores=1,
                   disks=[Disk(volume="local:vm-140-disk-0.qcow2", size_mb=32)])
    assert await store.create_vm(cfg, Placement(node="n1"))
    await run_task(store, "vm.create", 140)
    pid = (await run_task(store, "vm.start", 140)).result["pid"]

    async def sampled() -> dict[str, Any] | None:
        vm = await usage(api, "/vms/140/usage")
        return vm if len(figures(vm, "cpu")) >= 2 else None

    vm = await wait_for(sampled, SAMPLE_WAIT, "two CPU figures of the VM")
    node = await usage(api, "/nodes/n1/usage")

    assert (vm["range"], vm["step_seconds"], vm["node"], vm["vmid"]) == ("hour", 10, "n1", 140)
    assert set(vm["metrics"]) == {"cpu", "memory_used_bytes", "memory_total_bytes",
                                  "disk_read_bytes_per_s", "disk_write_bytes_per_s",
                                  "net_rx_bytes_per_s", "net_tx_bytes_per_s"}
    for series in vm["metrics"].values():
        assert len(series["avg"]) == len(series["max"]) == 360
    cpu = list(figures(vm, "cpu").values())
    assert all(0.0 <= c <= 2.0 for c in cpu) and max(cpu) > 0, cpu  # the guest boots, beats
    rss = list(figures(vm, "memory_used_bytes").values())
    assert rss and all(1 * MIB < r < 64 * MIB + 512 * MIB for r in rss), rss
    assert set(figures(vm, "memory_total_bytes").values()) == {64 * MIB}
    assert figures(vm, "disk_read_bytes_per_s"), "no disk figures from QMP"
    assert not figures(vm, "net_rx_bytes_per_s")  # the VM has no network device
    assert vm["start"] % 10 == 0

    assert (node["node"], node["vmid"]) == ("n1", None)
    assert {"psi_cpu", "psi_memory", "psi_io"} <= set(node["metrics"])
    host_cpu = list(figures(node, "cpu").values())
    assert host_cpu and all(0.0 <= c <= 1.0 for c in host_cpu)
    assert all(t > 0 for t in figures(node, "memory_total_bytes").values())

    day = await usage(api, "/vms/140/usage", "day")
    assert day["step_seconds"] == 60 and len(day["metrics"]["cpu"]["max"]) == 1440
    assert figures(day, "memory_used_bytes")

    # The CLI reads the same figures.
    code, out = corral(api_url, "vm", "usage", "140")
    assert code == 0, out
    assert "VM 140 on n1" in out and "memory_used_bytes" in out and " MiB" in out
    code, out = corral(api_url, "node", "usage", "n1", "--range", "week", "--json")
    assert code == 0, out
    week = json.loads(out)
    assert (week["node"], week["range"], week["step_seconds"]) == ("n1", "week", 1800)
    assert figures(week, "memory_total_bytes")
    code, out = corral(api_url, "node", "usage", "n1", "--range", "decade")
    assert code == 2 and "--range" in out

    # The agent's own endpoint takes the same token as the API, and checks the range too.
    n1 = await store.node("n1")
    assert n1 is not None and n1.info is not None and n1.info.agent_url
    async with httpx.AsyncClient(base_url=n1.info.agent_url, timeout=10) as direct:
        assert (await direct.get("/usage")).status_code == 401
        r = await direct.get("/vms/140/usage", params={"range": "decade"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 422 and r.json()["error"]["field"] == "range"

    # A restart (as systemd's) writes the archives and the next agent reads them back.
    before_vm = figures(await usage(api, "/vms/140/usage"), "memory_used_bytes")
    before_node = figures(await usage(api, "/nodes/n1/usage"), "memory_total_bytes")
    agent.kill(signal.SIGTERM)
    assert (agent.data_dir / "usage/vm-140.rrd").stat().st_size > 0
    assert (agent.data_dir / "usage/node.rrd").stat().st_size > 0
    agent.start()

    async def back() -> dict[str, Any] | None:
        try:
            return await usage(api, "/vms/140/usage")
        except AssertionError:  # not registered again yet: 503
            return None

    after_vm = figures(await wait_for(back, 30, "the restarted agent"), "memory_used_bytes")
    after_node = figures(await usage(api, "/nodes/n1/usage"), "memory_total_bytes")
    assert before_vm.items() <= after_vm.items()
    assert before_node.items() <= after_node.items()
    # The guest ran on through it, adopted by the new agent.
    vm_record = await store.vm(140)
    assert vm_record is not None and vm_record.runtime is not None
    assert vm_record.runtime.pid == pid
