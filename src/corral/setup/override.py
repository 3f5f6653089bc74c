"""`corral cluster expected 1`: a lone survivor carries the cluster on by itself.

When a cluster of two hosts loses one, the survivor has no majority and etcd stops: nothing
is written, no lease renewed, no VM recovered. The override rebuilds etcd as a one-member
cluster from this host's own data (etcd's `--force-new-cluster`), in order:
1. refuse unless this host is alone (`override_rules.override_refusal`), then ask;
2. stop the agent and the API (they would write into the cluster while it is rebuilt);
3. start etcd once with `--force-new-cluster`, wait until it is healthy, then again with its
   normal command line and with only itself in the host's config;
4. as root: raise the cluster's epoch (recording who and when), and remove the etcd users of
   the members left out: their certificates get nothing from the rebuilt cluster until they
   `rejoin`. Their ClusterHost records stay, so status shows them as not in etcd;
5. start the agent and the API again. HA recovers the lost hosts' HA VMs once their leases
   have expired and their watchdogs have surely fired, where their disks can be reached.

Dangerous by nature: were the other host alive after all (cut off, not dead), both would run
the same VMs. The override therefore refuses while any other voter answers, and asks.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from corral.cluster import etcd_auth, keys, members
from corral.cluster.membership import EndpointStatus, Member, member_label
from corral.cluster.models import ClusterInfo
from corral.cluster.store import Store
from corral.host import config as host_config
from corral.host.commands import AGENT, API, ETCD, ServiceName, etcd_command, host_commands
from corral.host.config import HostConfig
from corral.host.services import Services
from corral.setup import local
from corral.setup.local import Say, SetupError
from corral.setup.override_rules import dropped, next_epoch, override_refusal

log = logging.getLogger(__name__)
STOP_TIMEOUT = 30.0
STATUS_TIMEOUT = 2.0


@dataclass(frozen=True)
class OverridePlan:
    """What the override would do: this host's member and the members it leaves out."""

    own: Member
    left_out: list[Member]


async def plan_override(config: HostConfig) -> OverridePlan:
    """Check that this host may carry the cluster on alone; SetupError with the reason when
    it may not."""
    if config.role != "host":
        raise SetupError("role: only a full host can carry the cluster on alone (a witness "
                         "runs no VMs and holds no CA key)")
    tls = local.host_tls(config)
    own = await members.endpoint_status(config.local_client_url, tls, STATUS_TIMEOUT)
    current: list[Member] = []
    statuses: list[EndpointStatus] = []
    if own is not None:
        async with Store([config.local_client_url], timeout=3.0, tls=tls) as store:
            current = await members.list_members(store)
        found = await members.endpoint_statuses(
            [m.client_urls[0] for m in current if m.client_urls], tls, STATUS_TIMEOUT)
        statuses = [s for s in found if s is not None]
    reason = override_refusal(own, current, statuses)
    if reason is not None:
        raise SetupError(f"refused: {reason}")
    assert own is not None
    me = next(m for m in current if m.id == own.member_id)
    return OverridePlan(own=me, left_out=dropped(current, me.id))


def warning(config: HostConfig, plan: OverridePlan) -> str:
    """What the admin must read before saying yes."""
    names = ", ".join(member_label(m) for m in plan.left_out) or "none"
    return (f"DANGER: `expected 1` makes {config.name} the cluster's only etcd member.\n"
            f"  Left out: {names}. Make sure they are powered off or cut off for good: if one "
            "of them still runs,\n"
            "  both sides may run the same VMs and write the same disks. They come back only "
            "through `corral cluster rejoin`,\n"
            "  which wipes their etcd data.")


async def _wait_stopped(services: Services, name: ServiceName, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while services.is_active(name):
        if time.monotonic() > deadline:
            raise SetupError(f"{name} is still running {timeout:.0f}s after it was stopped")
        await asyncio.sleep(local.POLL)


async def _restart_etcd(config: HostConfig, services: Services, say: Say,
                        force_new_cluster: bool) -> None:
    commands = host_commands(config)
    if force_new_cluster:
        commands = [etcd_command(config, force_new_cluster=True), *commands[1:]]
    services.install(commands)
    services.stop([ETCD])
    await _wait_stopped(services, ETCD, STOP_TIMEOUT)
    services.start([ETCD])
    await local.wait_etcd(config, say)


def alone(config: HostConfig) -> HostConfig:
    """The host's config with only its own member: its services no longer dial the others."""
    return HostConfig.model_validate(config.model_dump() | {
        "etcd_endpoints": [config.client_url], "initial_cluster": ""})


async def record_epoch(config: HostConfig, plan: OverridePlan, user: str, now: float
                       ) -> ClusterInfo:
    """As root: the new epoch, and the left-out members' etcd users gone."""
    async with Store([config.local_client_url], tls=local.admin_tls(config)) as admin:
        info, _ = await admin.get(keys.CLUSTER_INFO, ClusterInfo)
        if info is None:
            raise SetupError(f"the cluster has no {keys.CLUSTER_INFO} record: it was not made "
                             "by `corral cluster create`")
        info = next_epoch(info, config.name, user, now, plan.left_out)
        await admin.put(keys.CLUSTER_INFO, info)
        for m in plan.left_out:
            if m.name and m.name != etcd_auth.ROOT:
                await etcd_auth.remove_user(admin, m.name)
    return info


async def expected_one(config: HostConfig, services: Services, say: Say,
                       confirm: Callable[[OverridePlan], bool],
                       user: str | None = None) -> ClusterInfo:
    """The whole override; `confirm` is asked once the checks have passed (False: nothing
    is done). Returns the cluster record in its new epoch."""
    plan = await plan_override(config)
    if not confirm(plan):
        raise SetupError("not confirmed: nothing was changed")
    who = user or getpass.getuser()
    log.warning("cluster override by %s on %s: leaving out %s", who, config.name,
                ", ".join(member_label(m) for m in plan.left_out))
    say("stopping the agent and the API")
    services.stop([AGENT, API])
    say("restarting etcd with --force-new-cluster: a one-member cluster from this host's data")
    await _restart_etcd(config, services, say, force_new_cluster=True)
    config = alone(config)
    host_config.save(config)
    say("restarting etcd with its normal command line")
    await _restart_etcd(config, services, say, force_new_cluster=False)
    info = await record_epoch(config, plan, who, time.time())
    say(f"cluster {info.name} is in epoch {info.epoch}; starting the agent and the API")
    local.start_rest(config, services)
    return info
