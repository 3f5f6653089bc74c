"""`cluster leave` on a cluster of three hosts made by `create` and two `join`s, their real
services (etcd over mutual TLS with authentication on, agent, API) as child processes on
loopback: a host with a VM on it may not leave, one without leaves (a failing step is
reported with what is left, and a second run finishes it), and the last but one voter may
not leave. Refused leaves change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from host_processes import ProcessServices
from test_cluster_setup import lab_host, say, trust, until

from corral.cluster import keys, members
from corral.cluster.models import ClusterHost, Placement, VMConfig
from corral.cluster.store import Store
from corral.host.commands import ETCD, ServiceName
from corral.host.config import HostConfig
from corral.host.services import ServicesError
from corral.setup import local
from corral.setup.create import create_cluster
from corral.setup.join import join_cluster
from corral.setup.join_rules import Refusal
from corral.setup.leave import LeaveError, LeaveRefused, leave, marker_path, survey, tls_files
from corral.setup.leave_rules import Plan
from corral.setup.status import gather

pytestmark = pytest.mark.integration


class FlakyServices(ProcessServices):
    """Processes, whose next stop of the services named in `fail_stop` fails once."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.fail_stop: set[str] = set()

    def stop(self, names: Sequence[ServiceName]) -> None:
        failing = self.fail_stop & set(names)
        if failing:
            self.fail_stop -= failing
            raise ServicesError(f"stop {', '.join(sorted(failing))}: broken for the test")
        super().stop(names)


@dataclass
class Three:
    hosts: list[HostConfig]
    services: list[FlakyServices]
    api_token: str

    def api(self) -> httpx.AsyncClient:
        h1 = self.hosts[0]
        assert h1.tls is not None
        return httpx.AsyncClient(base_url=h1.api_url + "/api/v1", verify=trust(h1.tls.ca_cert),
                                 timeout=30.0,
                                 headers={"Authorization": f"Bearer {self.api_token}"})

    def admin(self, i: int) -> Store:
        h = self.hosts[i]
        return Store([h.local_client_url], tls=local.admin_tls(h))


@pytest.fixture
async def three(short_tmp: Path) -> AsyncIterator[Three]:
    images = short_tmp / "images"
    images.mkdir()
    hosts = [lab_host(short_tmp, f"h{i}", images) for i in (1, 2, 3)]
    services = [FlakyServices(short_tmp / f"logs-h{i}") for i in (1, 2, 3)]
    try:
        created = await create_cluster(hosts[0], services[0], say)
        h1 = hosts[0]
        assert h1.tls is not None
        async with httpx.AsyncClient(
                base_url=h1.api_url + "/api/v1", verify=trust(h1.tls.ca_cert), timeout=30.0,
                headers={"Authorization": f"Bearer {created.api_token}"}) as api:
            for host, svc in zip(hosts[1:], services[1:], strict=True):
                reply = await api.post("/cluster/tokens", json={"ttl_seconds": 600})
                assert reply.status_code == 201, reply.text
                await join_cluster(f"127.0.0.1:{h1.api_port}", reply.json()["token"], host,
                                   svc, say)
        yield Three(hosts, services, created.api_token)
    finally:
        for svc in reversed(services):
            svc.close()
        for i, svc in enumerate(services, 1):
            for name in ("corral-etcd", "corral-agent", "corral-api"):
                print(f"--- h{i} {name}\n{svc.log(name)}")


@dataclass(frozen=True)
class HostState:
    """What a refused leave must leave alone on the host and in the cluster."""

    member_ids: list[int]
    record: bool
    node_keys: bool
    files: dict[str, bool]
    active: dict[str, bool]


async def state_of(t: Three, i: int) -> HostState:
    h, svc = t.hosts[i], t.services[i]
    async with t.admin(0) as admin:
        ids = sorted(m.id for m in await members.list_members(admin))
        record = (await admin.get(keys.cluster_host(h.name), ClusterHost))[0] is not None
        node_keys = bool(await admin.raw_prefix(f"{keys.NODES}{h.name}/"))
    paths = [h.config_path, h.etcd_data_dir, marker_path(h), *tls_files(h)]
    return HostState(ids, record, node_keys, {str(p): p.exists() for p in paths},
                     {name: svc.is_active(name) for name in svc.commands})


async def test_a_host_leaves_a_three_host_cluster(three: Three) -> None:
    h1, h2, h3 = three.hosts
    s2 = three.services[1]

    async def three_voters_and_agents() -> bool:
        async with three.admin(0) as admin:
            status = await gather(admin, local.host_tls(h1))
        online = {h.name for h in status.hosts if h.agent_online}
        return (status.quorum and len(status.voters) == 3 and not status.learners
                and online == {"h1", "h2", "h3"})

    await until(three_voters_and_agents, "three voters and every agent online")

    # A VM placed on h2: refused, naming it, and nothing changed.
    async with three.admin(0) as admin:
        assert await admin.create_vm(VMConfig(vmid=101, name="web", memory_mb=64, cores=1),
                                     Placement(node="h2"))
    before = await state_of(three, 1)
    assert before.record and before.node_keys and all(before.files[str(p)] for p in
                                                      (h2.config_path, h2.etcd_data_dir))
    found = await survey(h2)
    assert isinstance(found.decision, Refusal)
    assert "web (101): placed here" in found.decision.message
    assert "corral node maintenance enable h2" in found.decision.message
    with pytest.raises(LeaveRefused, match=r"web \(101\)"):
        await leave(h2, s2, found, say)
    assert await state_of(three, 1) == before

    # Maintenance empties it, as the refusal said; the VM would come back when it ends.
    async with three.api() as api:
        reply = await api.post("/nodes/h2/maintenance", json={"enable": True})
        assert reply.status_code == 200, reply.text

    async def moved_off() -> Placement | None:
        async with three.admin(0) as admin:
            vm = await admin.vm(101)
        return vm.placement if vm is not None and vm.placement.node != "h2" else None

    moved = await until(moved_off, "VM 101 moved off h2 by maintenance")
    assert moved.origin == "h2"

    # Its etcd does not stop: the cluster forgot it already, the error says what is left.
    found = await survey(h2)
    assert isinstance(found.decision, Plan) and found.decision.member is not None
    assert found.decision.returning == (101,)
    member_id = found.decision.member.id
    s2.fail_stop = {ETCD}
    with pytest.raises(LeaveError) as failed:
        await leave(h2, s2, found, say)
    message = str(failed.value)
    assert "leaving stopped at stop_etcd" in message and "broken for the test" in message
    assert "removed h2 from cluster setup" in message
    for step in ("wipe_etcd_data", "wipe_pki", "wipe_config"):
        assert f"- {step}:" in message
    assert str(h2.etcd_data_dir) in message
    assert h2.config_path.exists() and marker_path(h2).exists()

    # Again: only this host's own steps are left, and it finishes them.
    again = await survey(h2)
    assert isinstance(again.decision, Plan) and again.decision.resuming
    assert "remove_member" not in again.decision.steps
    done = await leave(h2, s2, again, say)
    assert any("deleted the etcd data" in d for d in done)

    after = await state_of(three, 1)
    assert member_id not in after.member_ids and len(after.member_ids) == 2
    assert not after.record and not after.node_keys
    assert not any(after.files.values()), after.files  # etcd data, certificates, config
    assert not any(after.active.values()), after.active
    assert not (h2.etc_dir / "pki").exists()

    # VM 101 stays where maintenance moved it: nothing would bring it back to h2.
    async with three.admin(0) as admin:
        vm = await admin.vm(101)
    assert vm is not None and vm.placement.node == moved.node and vm.placement.origin is None

    # The two left are voters with the quorum, and answer.
    async with three.admin(0) as admin:
        status = await gather(admin, local.host_tls(h1))
    assert status.quorum and sorted(status.voters) == ["h1", "h3"] and not status.learners
    assert sorted(status.healthy_voters) == ["h1", "h3"]
    assert {h.name for h in status.hosts} == {"h1", "h3"}
    async with Store([h3.local_client_url], tls=local.host_tls(h3)) as as_h3:
        await as_h3.put(keys.cluster_host("probe"),
                        ClusterHost(name="probe", address="127.0.0.1"))
        got, _ = await as_h3.get(keys.cluster_host("probe"), ClusterHost)
        assert got is not None and got.name == "probe"
        await as_h3.delete(keys.cluster_host("probe"))

    # h3 is now the last but one voter: refused, and nothing changed.
    before3 = await state_of(three, 2)
    found = await survey(h3)
    assert isinstance(found.decision, Refusal)
    assert "last but one voter" in found.decision.message
    with pytest.raises(LeaveRefused, match="last but one voter"):
        await leave(h3, three.services[2], found, say)
    assert await state_of(three, 2) == before3
    assert all(before3.active.values())
