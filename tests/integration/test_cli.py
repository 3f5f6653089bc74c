"""The CLI against a real API server (uvicorn in a thread) and a real etcd."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_thread import serving
from typer.testing import CliRunner, Result

from corral.api.app import create_app
from corral.api.wire import MAX_LIMIT
from corral.cli.client import write_client_config
from corral.cli.main import app
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.store import Store
from corral.lab.etcd import EtcdMember, free_port, wait_healthy

pytestmark = pytest.mark.integration

TOKEN = "cli-token"


@pytest.fixture(scope="module")
def api_url(etcd_endpoint: str) -> Iterator[str]:
    with serving(create_app([etcd_endpoint])) as port:
        yield f"http://127.0.0.1:{port}"


async def _seed(endpoint: str) -> None:
    async with Store([endpoint]) as store:
        await store.client.delete_prefix(b"/corral/")
        await store.add_token(TOKEN)
        await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=2, memory_mb=2048))
        await store.client.put(keys.node("n1", "alive").encode(), b"1")
        await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="images"))


@pytest.fixture
def run(api_url: str, etcd_endpoint: str, tmp_path: Path) -> Iterator[CliRunnerCall]:
    asyncio.run(_seed(etcd_endpoint))
    env = {"CORRAL_URL": api_url, "CORRAL_TOKEN": TOKEN, "CORRAL_CONFIG": f"{tmp_path}/none"}
    yield CliRunnerCall(env)


class CliRunnerCall:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), env=self.env, input=input)


def test_node_list_json(run: CliRunnerCall) -> None:
    result = run("node", "list", "--json")
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.stdout)
    assert [(n["name"], n["online"]) for n in nodes] == [("n1", True)]
    table = run("node", "list")
    assert table.exit_code == 0 and "n1" in table.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--memory", "0"], "memory_mb"),
        (["--cores", "0"], "cores"),
        (["--disk", "nfs:1G"], "disks[0]"),
        (["--disk", "local:../x"], "disks[0]"),
        (["--node", "n9"], "node"),
    ],
)
def test_bad_create_names_the_field(run: CliRunnerCall, args: list[str], field: str) -> None:
    result = run("vm", "create", "--name", "web1", "--node", "n1", "--no-wait", *args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], lines
    assert json.loads(run("vm", "list", "--json").stdout) == []


def test_create_list_and_guarded_delete(run: CliRunnerCall) -> None:
    result = run(
        "vm", "create", "--name", "web1", "--node", "n1", "--memory", "64", "--disk", "local:1G",
        "--no-wait", "--json",
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    vms = json.loads(run("vm", "list", "--json").stdout)
    assert [(v["vmid"], v["name"], v["memory_mb"]) for v in vms] == [(created["vmid"], "web1", 64)]
    tasks = json.loads(run("task", "list", "--json").stdout)
    assert [(t["id"], t["kind"]) for t in tasks] == [(created["task"], "vm.create")]
    # The create task is still queued (no agent here), so a second action is refused.
    refused = run("vm", "start", str(created["vmid"]))
    assert refused.exit_code == 1 and "task in progress" in refused.stderr

    aborted = run("vm", "delete", str(created["vmid"]))
    assert aborted.exit_code != 0 and "Delete VM" in aborted.output
    assert len(json.loads(run("vm", "list", "--json").stdout)) == 1
    assert len(json.loads(run("task", "list", "--json").stdout)) == 1


def test_unknown_vm_and_unreachable_api(run: CliRunnerCall) -> None:
    result = run("vm", "show", "555")
    assert result.exit_code == 1 and "VM 555 does not exist" in result.stderr
    run.env["CORRAL_URL"] = f"http://127.0.0.1:{free_port()}"
    result = run("vm", "list")
    assert result.exit_code == 1 and "cannot reach the Corral API" in result.stderr


async def _put_raw(endpoint: str, items: dict[str, bytes]) -> None:
    async with Store([endpoint]) as store:
        for key, raw in items.items():
            await store.client.put(key.encode(), raw)


def test_lists_and_ha_status_work_beside_records_that_do_not_decode(
        run: CliRunnerCall, etcd_endpoint: str) -> None:
    created = run("vm", "create", "--name", "web1", "--node", "n1", "--memory", "64",
                  "--no-wait")
    assert created.exit_code == 0, created.output
    [vm] = json.loads(run("vm", "list", "--json").stdout)
    asyncio.run(_put_raw(etcd_endpoint, {
        keys.vm(vm["vmid"], "config"): json.dumps({  # what a newer version writes
            "vmid": vm["vmid"], "name": "web1", "memory_mb": 64, "cores": 1, "numa": 2,
        }).encode(),
        keys.vm(777, "config"): b'{"vmid": 777, "name": "broken"',
        keys.vm(777, "placement"): b'{"node": "n1"}',
        keys.node("n5", "info"): b"garbage",
    }))
    listed = run("vm", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [v["vmid"] for v in json.loads(listed.stdout)] == [vm["vmid"]]
    assert "warning:" in listed.stderr and "/corral/vms/777/config" in listed.stderr
    nodes = run("node", "list")
    assert nodes.exit_code == 0 and "n5" in nodes.stdout, nodes.output
    assert "/corral/nodes/n5/info" in nodes.stderr
    status = run("ha", "status")
    assert status.exit_code == 0, status.output
    assert "/corral/vms/777/config" in status.stdout and "not JSON" in status.stdout
    report = json.loads(run("ha", "status", "--json").stdout)
    assert {s["key"] for s in report["skipped"]} == {"/corral/vms/777/config",
                                                      "/corral/nodes/n5/info"}


def test_a_host_whose_api_is_down_is_passed_over(api_url: str, etcd_endpoint: str,
                                                  tmp_path: Path) -> None:
    """The config lists a dead host's API first: the CLI goes on to the next host's, says so
    on stderr, and answers; with every host down it fails naming them all."""
    asyncio.run(_seed(etcd_endpoint))
    dead = f"http://127.0.0.1:{free_port()}"
    config = write_client_config(dead, TOKEN, tmp_path / "client.json", others=[api_url])
    runner = CliRunner()
    result = runner.invoke(app, ["node", "list", "--json"], env={"CORRAL_CONFIG": str(config)})
    assert result.exit_code == 0, result.output
    assert [n["name"] for n in json.loads(result.stdout)] == ["n1"]
    assert f"cannot reach the Corral API at {dead}; trying {api_url}" in result.stderr
    dead2 = f"http://127.0.0.1:{free_port()}"
    config = write_client_config(dead, TOKEN, tmp_path / "client.json", others=[dead2])
    result = runner.invoke(app, ["node", "list"], env={"CORRAL_CONFIG": str(config)})
    assert result.exit_code == 1 and f"{dead}, {dead2}" in result.stderr


async def _add_token(endpoint: str) -> None:
    async with Store([endpoint]) as store:
        await store.add_token(TOKEN)


def test_a_host_whose_api_cannot_reach_etcd_is_passed_over_for_reads(
        api_url: str, etcd_endpoint: str, tmp_path: Path) -> None:
    """The first host's API answers, but its etcd does not (stopped here, as when the host
    is cut from the others' etcd): a read goes on to the next host's API and says so; a
    change is not sent on (etcd may have taken it) and fails with the reason."""
    asyncio.run(_seed(etcd_endpoint))
    member = EtcdMember("cut", tmp_path / "cut", free_port(), free_port())
    proc = subprocess.Popen(member.command([member]), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_healthy([member.client_url])
        asyncio.run(_add_token(member.client_url))
        with serving(create_app([member.client_url])) as port:
            cut = f"http://127.0.0.1:{port}"
            config = write_client_config(cut, TOKEN, tmp_path / "client.json",
                                         others=[api_url])
            env = {"CORRAL_CONFIG": str(config)}
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                runner = CliRunner()
                result = runner.invoke(app, ["node", "list", "--json"], env=env)
                assert result.exit_code == 0, result.output
                assert [n["name"] for n in json.loads(result.stdout)] == ["n1"]
                assert (f"the Corral API at {cut} cannot reach etcd; trying {api_url}"
                        in result.stderr)
                result = runner.invoke(app, ["vm", "create", "--name", "web9", "--memory",
                                             "64", "--node", "n1"], env=env)
                assert result.exit_code == 1 and "store is unavailable" in result.stderr
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        assert asyncio.run(_vm_names(etcd_endpoint)) == []
    finally:
        proc.terminate()
        proc.wait(10)


async def _vm_names(endpoint: str) -> list[str]:
    async with Store([endpoint]) as store:
        return [vm.config.name for vm in await store.vms()]


async def _put_vms(endpoint: str, vms: list[tuple[int, str, VMStatus]]) -> None:
    async with Store([endpoint]) as store:
        await store.client.put(keys.node("n2", "alive").encode(), b"1")
        await store.put(keys.node("n2", "info"), NodeInfo(name="n2", cpus=2, memory_mb=2048))
        for vmid, node, status in vms:
            cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)
            assert await store.create_vm(cfg, Placement(node=node, state=RunState.STOPPED))
            await store.put_runtime(vmid, VMRuntime(node=node, status=status))


def test_vm_list_reads_every_page_and_filters(run: CliRunnerCall, etcd_endpoint: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("corral.cli.client.PAGE_SIZE", 2)  # five VMs: three pages
    asyncio.run(_put_vms(etcd_endpoint, [
        (104, "n1", VMStatus.RUNNING), (101, "n1", VMStatus.STOPPED),
        (105, "n2", VMStatus.RUNNING), (102, "n2", VMStatus.STOPPED),
        (103, "n1", VMStatus.RUNNING)]))

    def listed(*args: str) -> list[int]:
        result = run("vm", "list", "--json", *args)
        assert result.exit_code == 0, result.output
        return [v["vmid"] for v in json.loads(result.stdout)]

    assert listed() == [101, 102, 103, 104, 105]
    assert listed("--node", "n1") == [101, 103, 104]
    assert listed("--status", "running") == [103, 104, 105]
    assert listed("--node", "n2", "--status", "running") == [105]
    assert listed("--limit", "3") == [101, 102, 103]
    assert listed("--limit", str(MAX_LIMIT + 1)) == [101, 102, 103, 104, 105]  # above a page
    table = run("vm", "list", "--node", "n2")
    assert table.exit_code == 0 and "vm105" in table.stdout and "vm104" not in table.stdout
    bad = run("vm", "list", "--status", "sleeping")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: status"), bad.output
    assert run("vm", "list", "--limit", "0").exit_code == 2


def test_bulk_cancel_stops_the_vms_not_begun(run: CliRunnerCall) -> None:
    created = json.loads(run("vm", "create", "--name", "b1", "--node", "n1", "--memory", "64",
                             "--no-wait", "--json").stdout)
    task = run("node", "bulk", "start", "n1", "--no-wait").stdout.strip()
    result = run("node", "bulk", "cancel", task)  # no manager here: nothing has begun
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"cancelled: {created['vmid']}"
    again = run("node", "bulk", "cancel", task, "--vms", str(created["vmid"]))
    assert again.exit_code == 1 and "nothing to cancel" in again.stderr
    assert "already cancelled" in again.stderr


def test_ha_rule_and_resource_removal_exit_0(run: CliRunnerCall) -> None:
    """The API answers these with 204 and no body."""
    created = json.loads(run("vm", "create", "--name", "ha1", "--node", "n1", "--memory", "64",
                             "--no-wait", "--json").stdout)
    vmid = str(created["vmid"])
    assert run("ha", "add", vmid).exit_code == 0
    added = run("ha", "rule", "add", "prefer-n1", "--nodes", "n1:2", "--vms", vmid)
    assert added.exit_code == 0, added.output
    removed = run("ha", "rule", "remove", "prefer-n1")
    assert removed.exit_code == 0 and "rule prefer-n1 removed" in removed.stdout, removed.output
    assert json.loads(run("ha", "rule", "list", "--json").stdout) == []
    gone = run("ha", "remove", vmid)
    assert gone.exit_code == 0, gone.output
    assert vmid not in run("ha", "status").stdout.split()
    assert run("ha", "rule", "remove", "prefer-n1").exit_code == 1  # no such rule
