"""`cluster expected 1` and `cluster rejoin` with the hosts' real services (etcd, agent, API)
as child processes on loopback, over TLS: two hosts, one loses its power; the survivor
rebuilds the cluster around itself in a new epoch; the dead host returns with its old data,
takes no lease and says it is no longer a member; `rejoin` brings it back as a voter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from host_processes import ProcessServices
from test_cluster_setup import api_up, lab_host, say, trust, until

from corral.agent.standing_watch import read_notice
from corral.cluster.models import ClusterInfo
from corral.cluster.store import Store
from corral.host import config as host_config
from corral.host.commands import AGENT, API, ETCD
from corral.setup import local
from corral.setup.create import create_cluster
from corral.setup.join import join_cluster
from corral.setup.local import SetupError
from corral.setup.override import expected_one
from corral.setup.rejoin import rejoin_cluster, standing_here
from corral.setup.status import gather
from corral.setup.status_view import ClusterStatus

pytestmark = pytest.mark.integration


def yes(plan: Any) -> bool:
    return True


def cluster_status(config: host_config.HostConfig) -> subprocess.CompletedProcess[str]:
    """`corral cluster status` run on that host."""
    return subprocess.run([sys.executable, "-m", "corral.cli.main", "cluster", "status",
                           "--host-config", str(config.config_path)],
                          capture_output=True, text=True, timeout=60, check=False)


async def status_of(config: host_config.HostConfig) -> ClusterStatus:
    async with Store([config.local_client_url], timeout=3.0,
                     tls=local.admin_tls(config)) as admin:
        return await gather(admin, local.host_tls(config))


async def test_expected_one_then_the_dropped_host_rejoins(short_tmp: Path) -> None:
    images = short_tmp / "images"
    images.mkdir()
    h1, h2 = lab_host(short_tmp, "h1", images), lab_host(short_tmp, "h2", images)
    s1, s2 = ProcessServices(short_tmp / "logs-h1"), ProcessServices(short_tmp / "logs-h2")
    try:
        created = await create_cluster(h1, s1, say)
        assert created.api_token
        await until(lambda: api_up(h1), "the API of h1")

        # Refused on a healthy cluster of one: it has its quorum.
        with pytest.raises(SetupError, match="has its quorum"):
            await expected_one(h1, s1, say, yes, user="test")

        async with Store([h1.local_client_url], tls=local.admin_tls(h1)) as admin:
            token, _ = await _token(h1, admin)
        await join_cluster(f"127.0.0.1:{h1.api_port}", token, h2, s2, say)

        async def two_voters_online() -> ClusterStatus | None:
            s = await status_of(h1)
            online = {h.name for h in s.hosts if h.agent_online}
            return s if (s.quorum and len(s.voters) == 2 and online == {"h1", "h2"}) else None

        await until(two_voters_online, "two voters and both agents online")
        # Both alive: an override would split the cluster.
        with pytest.raises(SetupError, match="has its quorum"):
            await expected_one(h1, s1, say, yes, user="test")

        async with Store([h1.local_client_url], tls=local.admin_tls(h1)) as admin:
            before = await admin.node("h2")
            assert before is not None and before.info is not None
            h2_started = before.info.started_at
        # h2 loses its power.
        for name in (API, AGENT, ETCD):
            s2.kill(name)

        async def no_quorum() -> bool:
            return not (await gather_quick(h1)).quorum

        await until(no_quorum, "h1 sees no quorum", timeout=20)

        # Not confirmed: nothing changes.
        with pytest.raises(SetupError, match="not confirmed"):
            await expected_one(h1, s1, say, lambda plan: False, user="test")
        assert s1.is_active(AGENT) and s1.is_active(API)

        info = await expected_one(h1, s1, say, yes, user="test")
        assert info.epoch == 2 and info.overrides[-1].dropped == ["h2"]
        assert info.overrides[-1].host == "h1" and info.overrides[-1].user == "test"
        h1 = host_config.load(h1.config_path)
        assert h1.etcd_endpoints == [h1.client_url]  # no longer dials the dropped host

        async def alone_with_quorum() -> ClusterStatus | None:
            s = await status_of(h1)
            agent = next((h for h in s.hosts if h.name == "h1"), None)
            return s if s.quorum and agent is not None and agent.agent_online else None

        status = await until(alone_with_quorum, "h1 alone with its quorum and its agent")
        assert status.voters == ["h1"] and status.leader == "h1"
        assert status.cluster is not None and status.cluster.epoch == 2
        hosts = {h.name: h for h in status.hosts}
        assert hosts["h2"].in_etcd is False and hosts["h1"].in_etcd is True
        await until(lambda: api_up(h1), "the API of h1 again")

        # h2 returns with its old data: its etcd stops itself once it reaches the rebuilt
        # cluster, its agent takes no lease and says why.
        s2.start([ETCD, AGENT])

        async def noticed() -> Any:
            return read_notice(h2.qemu_run_dir)

        notice = await until(noticed, "h2's agent notices it is no longer a member",
                             timeout=30)
        assert "no longer lists this host's etcd member h2" in notice.reason
        assert "NO LONGER A MEMBER" in s2.log(AGENT)
        async with Store([h1.local_client_url], tls=local.admin_tls(h1)) as admin:
            # Its lease from before the power loss runs out; it takes no new one and
            # registers nothing: its agent's facts are still those of its last life.
            async def h2_leaseless() -> bool:
                node = await admin.node("h2")
                return node is not None and not node.alive

            await until(h2_leaseless, "h2's old lease runs out", timeout=30)
            await asyncio.sleep(3)
            node = await admin.node("h2")
            assert node is not None and not node.alive and node.info is not None
            assert node.info.started_at == h2_started
        out = cluster_status(h2)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "NOT A MEMBER" in out.stdout and "corral cluster rejoin" in out.stdout
        # h1 is a member: its status is the usual one.
        out = cluster_status(h1)
        assert out.returncode == 0 and "epoch 2" in out.stdout, out.stdout + out.stderr

        # A host that still is a member has nothing to rejoin; the API takes back only a
        # client whose certificate names a dropped host.
        with pytest.raises(SetupError, match="not known to be dropped"):
            await rejoin_cluster(h1, s1, say, f"127.0.0.1:{h1.api_port}")
        assert h1.tls is not None
        rejoin_url = h1.api_url + "/api/v1/cluster/rejoin"
        async with httpx.AsyncClient(verify=trust(h1.tls.ca_cert), timeout=10) as anonymous, \
                httpx.AsyncClient(timeout=10, **local.host_tls(h1).httpx_kwargs()) as as_h1:
            r = await anonymous.post(rejoin_url)
            assert r.status_code == 403 and "none was shown" in r.text, r.text
            r = await as_h1.post(rejoin_url)
            assert r.status_code == 409 and "h1 is still a member" in r.text, r.text

        h2 = host_config.load(h2.config_path)
        await rejoin_cluster(h2, s2, say, f"127.0.0.1:{h1.api_port}")
        assert list(h2.data_dir.glob("etcd.stale-*")), "the old etcd data was not kept"
        assert read_notice(h2.qemu_run_dir) is None
        assert (await standing_here(host_config.load(h2.config_path))).standing == "member"

        async def back() -> ClusterStatus | None:
            s = await status_of(h1)
            online = {h.name for h in s.hosts if h.agent_online}
            return s if (s.quorum and sorted(s.voters) == ["h1", "h2"] and not s.learners
                         and online == {"h1", "h2"}) else None

        status = await until(back, "h2 a voter again with its agent online")
        assert all(h.in_etcd for h in status.hosts)
        assert status.cluster is not None and status.cluster.epoch == 2
    finally:
        s2.close()
        s1.close()
        for name in (ETCD, AGENT, API):
            print(f"--- h1 {name}\n{s1.log(name)}\n--- h2 {name}\n{s2.log(name)}")


async def gather_quick(config: host_config.HostConfig) -> ClusterStatus:
    async with Store([config.local_client_url], timeout=2.0,
                     tls=local.host_tls(config)) as store:
        return await gather(store, local.host_tls(config))


async def _token(config: host_config.HostConfig, admin: Store) -> tuple[str, ClusterInfo]:
    """A join token, made as `corral cluster token` makes it (through the admission code)."""
    from corral.setup.admission import ClusterPKI, cluster_info, issue_token

    assert config.tls is not None
    token, _ = await issue_token(admin, ClusterPKI(config.tls.ca_cert.parent), 600, "host",
                                 time.time())
    return str(token), await cluster_info(admin)
