"""/metrics of the API and of an agent against a real etcd: the cluster's state, request
latency by route template, etcd latency, the manager's decision time; refused without token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from qemu_fixtures import qemu_run_dir, tiny_images

from corral.agent.console import console_app
from corral.api.app import create_app
from corral.api.wire import DEFAULT_MAX_IN_FLIGHT
from corral.cluster import keys
from corral.cluster.models import NodeInfo, StorageConfig, StorageType, VMConfig
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.manager.election import Election
from corral.manager.loop import Manager
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir", "tiny_images"]  # fixtures used by name

TOKEN = "metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VM_ROUTE = "/api/v1/vms/{vmid}"


@pytest.fixture
async def app(store: Store, etcd_endpoint: str) -> AsyncIterator[FastAPI]:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=4, memory_mb=4096))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    await store.put_storage(StorageConfig(id="local", type=StorageType.DIR, path="images"))
    app = create_app([etcd_endpoint])
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api/api/v1", headers=AUTH) as client:
        yield client


async def scrape(client: httpx.AsyncClient, path: str) -> list[Sample]:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


Labels = dict[str, str]


def value(samples: list[Sample], metric: str, labels: Labels | None = None) -> float | None:
    """The value of the one sample of metric whose labels include labels; None: no such."""
    want = (labels or {}).items()
    found = [s.value for s in samples if s.name == metric and want <= s.labels.items()]
    assert len(found) <= 1, (metric, labels, found)
    return found[0] if found else None


def count(samples: list[Sample], metric: str, labels: Labels | None = None) -> float:
    """A histogram's observation count (0 before its first)."""
    return value(samples, f"{metric}_count", labels) or 0.0


async def test_api_metrics_show_the_vm_and_the_requests(api: httpx.AsyncClient) -> None:
    r = await api.post("/vms", json={"name": "web1", "memory": 256, "cores": 2,
                                     "disks": ["local:1G"], "node": "n1"})
    assert r.status_code == 202, r.text
    vmid = r.json()["vmid"]
    before = await scrape(api, "/metrics")
    for _ in range(3):
        assert (await api.get(f"/vms/{vmid}")).status_code == 200
    assert (await api.get("/vms/999999")).status_code == 404
    after = await scrape(api, "/metrics")

    ids = {"vmid": str(vmid), "name": "web1"}
    assert value(after, "corral_vm_info", {"host": "n1", **ids}) == 1
    assert value(after, "corral_vm_memory_bytes", ids) == 256 * 1024 * 1024
    assert value(after, "corral_vm_cores", ids) == 2
    assert value(after, "corral_vm_status", {"status": "unknown", **ids}) == 1
    assert value(after, "corral_vm_status", {"status": "running", **ids}) is None
    assert value(after, "corral_vms", {"status": "unknown"}) == 1
    assert value(after, "corral_host_up", {"host": "n1"}) == 1
    assert value(after, "corral_host_cpus", {"host": "n1"}) == 4
    assert value(after, "corral_tasks", {"kind": "vm.create", "state": "queued"}) == 1

    # The route template, never the raw path, one series per status code.
    latency = "corral_api_request_duration_seconds"
    ok = {"route": VM_ROUTE, "method": "GET", "status": "200"}
    missing = {"route": VM_ROUTE, "method": "GET", "status": "404"}
    assert count(after, latency, ok) - count(before, latency, ok) == 3
    assert count(after, latency, missing) - count(before, latency, missing) == 1
    assert value(after, f"{latency}_bucket", {"le": "+Inf", **ok}) == count(after, latency,
                                                                             ok)
    assert not [s for s in after if s.labels.get("route", "").endswith(f"/{vmid}")]
    create = {"route": "/api/v1/vms", "method": "POST", "status": "202"}
    assert count(after, latency, create) >= 1
    # Every read of the scrape itself went to etcd and was timed.
    etcd = "corral_etcd_request_duration_seconds"
    read = {"operation": "get_prefix"}
    assert count(after, etcd, read) > count(before, etcd, read)
    assert count(after, etcd, {"operation": "transaction"}) >= 1  # the create
    # A few calm requests leave the bound on requests in flight at its ceiling.
    assert value(after, "corral_api_in_flight_limit", {}) == DEFAULT_MAX_IN_FLIGHT


async def test_api_metrics_need_the_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/metrics", headers={"Authorization": ""})).status_code == 401
    r = await api.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "corral_" not in r.text


async def test_agent_metrics_show_its_manager_and_etcd(store: Store, cluster_view: ClusterView,
                                                       tmp_path: Path) -> None:
    await store.add_token(TOKEN)
    lease = await store.grant_lease(5)
    token = await Election(store, "n1", lambda: lease).win()
    agent = console_app(store, QemuDriver(tmp_path, tmp_path, "tcg"), "n1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=agent),
                                 base_url="http://agent", headers=AUTH) as client:
        assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 401
        before = await scrape(client, "/metrics")
        await Manager(store, cluster_view, token).tick()
        after = await scrape(client, "/metrics")
    for name in ("corral_manager_decide_duration_seconds",
                 "corral_manager_pass_duration_seconds"):
        assert count(after, name) - count(before, name) == 1
    etcd = "corral_etcd_request_duration_seconds"
    read = {"operation": "get_prefix"}
    assert count(after, etcd, read) > count(before, etcd, read)
    assert value(after, "process_cpu_seconds_total") is not None  # the process's own
    assert not [s for s in after if s.name.startswith("corral_vm_")]  # the API's to show


async def test_agent_metrics_show_what_each_vm_uses(store: Store, qemu_run_dir: Path,
                                                   tiny_images: Path) -> None:
    await store.add_token(TOKEN)
    driver = QemuDriver(qemu_run_dir, tiny_images, "tcg")
    await driver.start(VMConfig(vmid=131, name="used", memory_mb=64, cores=1), [])
    agent = console_app(store, driver, "n1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=agent),
                                 base_url="http://agent", headers=AUTH) as client:
        seen = await scrape(client, "/metrics")
    labels = {"host": "n1", "vmid": "131"}
    cpu = value(seen, "corral_vm_cpu_seconds_total", labels)
    rss = value(seen, "corral_vm_memory_resident_bytes", labels)
    assert cpu is not None and cpu > 0  # booting the guest took CPU
    assert rss is not None and rss > 16 * 1024 * 1024  # QEMU holds the guest's memory
    assert value(seen, "corral_vm_cpu_seconds_total", {"host": "n1", "vmid": "132"}) is None
