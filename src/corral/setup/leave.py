"""`corral cluster leave`: the host it runs on takes itself out of its cluster.

`survey` reads this host and the cluster and decides (`leave_rules`); `leave` carries the
plan out. A full host removes its own etcd member with its admin (etcd root) certificate,
through the other members, as `remove-node` would (`member_removal`). Before any change it
writes a marker, `<etc>/leaving.json`, naming the member it removes and the other members'
client URLs: a leave that stopped half-way is finished by running it again, even once this
host's own etcd member is gone.

Kept on purpose: everything else in the data dir (images, local storage volumes, logs) and the
services' unit files (disabled: `corral cluster join` writes them again). Deleted: the etcd
data, every certificate and key of the cluster (the CA key and the root certificate would
let this machine act for the cluster), the host config.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from corral.cluster import keys, members, records
from corral.cluster.models import ClusterInfo
from corral.cluster.store import Store, StoreError
from corral.host.commands import ETCD, ServiceName, services_of
from corral.host.config import HostConfig
from corral.host.services import Services, ServicesError
from corral.manager.maintenance import moved_off
from corral.migration.record import MigrationRecord
from corral.setup import local
from corral.setup.admission import AdmissionError, read_hosts
from corral.setup.join_rules import Refusal
from corral.setup.leave_rules import (
    Here,
    LeaveFacts,
    Plan,
    Step,
    leave_plan,
    returning_to,
    vms_here,
)
from corral.setup.local import Say, SetupError
from corral.setup.member_removal import remove_member

MARKER_NAME = "leaving.json"
READ_TIMEOUT = 20.0  # reading the cluster: a few etcd calls, each retried for seconds


class LeaveRefused(SetupError):
    """The leave was refused; nothing was changed (or what was, was put back)."""


class LeaveError(SetupError):
    """A step failed half-way; the message says what was done, what is left and how to
    finish."""


class LeaveMarker(BaseModel):
    cluster: str
    member_id: int | None  # the etcd member this leave removes
    endpoints: list[str]  # the other members' client URLs, to reach the cluster again
    started_at: float


@dataclass(frozen=True)
class Survey:
    here: Here
    facts: LeaveFacts
    decision: Plan | Refusal


def marker_path(config: HostConfig) -> Path:
    return config.etc_dir / MARKER_NAME


def read_marker(config: HostConfig) -> LeaveMarker | None:
    """The marker of an earlier leave of this cluster; None when there is none (or it does
    not read: it then counts as none, and the leave starts from the cluster's view)."""
    try:
        marker = LeaveMarker.model_validate_json(marker_path(config).read_bytes())
    except (OSError, ValidationError):
        return None
    return marker if marker.cluster == config.cluster else None


def tls_files(config: HostConfig) -> list[Path]:
    tls = config.tls
    if tls is None:
        return []
    return [p for p in (tls.cert, tls.key, tls.ca_key, tls.admin_cert, tls.admin_key,
                        tls.ca_cert) if p is not None]


def credential_files(config: HostConfig) -> list[Path]:
    """What this host reaches the cluster with: its certificate, and on a full host the
    admin certificate that removes its member."""
    tls = config.tls
    if tls is None:
        return []
    wanted = [tls.ca_cert, tls.cert, tls.key]
    if config.role == "host":
        wanted += [p for p in (tls.admin_cert, tls.admin_key) if p is not None]
    return wanted


def here_of(config: HostConfig, marker: LeaveMarker | None) -> Here:
    data = config.etcd_data_dir
    creds = credential_files(config)
    return Here(cluster=config.cluster, name=config.name, role=config.role,
                member_name=config.member_name, peer_url=config.peer_url,
                etcd_data=data.is_dir() and any(data.iterdir()),
                pki_files=any(p.exists() for p in tls_files(config)),
                credentials=bool(creds) and all(p.exists() for p in creds),
                leaving=marker.member_id if marker else None)


def endpoints_of(config: HostConfig, marker: LeaveMarker | None) -> list[str]:
    extra = [e for e in (marker.endpoints if marker else []) if e not in config.etcd_endpoints]
    return [*config.etcd_endpoints_local_first, *extra]


def migrations_in(items: Sequence[tuple[str, bytes, int]]
                  ) -> tuple[dict[int, tuple[str, str]], set[int]]:
    """Source and target of each VM's migration record; the vmids whose record does not
    read."""
    found: dict[int, tuple[str, str]] = {}
    unreadable: set[int] = set()
    for key, value, _ in items:
        head, field = keys.split(key, keys.VMS)
        if field != "migration" or not head.isdigit():
            continue
        try:
            record = MigrationRecord.model_validate_json(value)
        except ValidationError:
            unreadable.add(int(head))
            continue
        found[int(head)] = (record.source, record.target)
    return found, unreadable


async def read_facts(config: HostConfig, marker: LeaveMarker | None) -> LeaveFacts:
    """The cluster as this host's credentials show it; SetupError when it cannot be read."""
    endpoints = endpoints_of(config, marker)
    witness = config.role == "witness"
    tls = local.host_tls(config) if witness else local.admin_tls(config)
    try:
        async with asyncio.timeout(READ_TIMEOUT), \
                Store(endpoints, timeout=3.0, tls=tls, follow_members=True) as store:
            current = await members.list_members(store)
            statuses = await members.endpoint_statuses(
                [m.client_urls[0] for m in current if m.client_urls], local.host_tls(config))
            if witness:
                return LeaveFacts(None, current, [s for s in statuses if s is not None],
                                   {}, (), False)
            info, _ = await store.get(keys.CLUSTER_INFO, ClusterInfo)
            hosts, _ = await read_hosts(store)
            items = await store.raw_prefix(keys.VMS)
            node_keys = await store.raw_prefix(f"{keys.NODES}{config.name}/")
    except (TimeoutError, StoreError, members.MembershipError, records.UnreadableRecord) as e:
        raise SetupError(f"cannot read the cluster from its etcd members "
                         f"({', '.join(endpoints)}): {e or type(e).__name__}") from e
    vms, problems = records.vms_from(items)
    migrations, bad_migrations = migrations_in(items)
    unreadable = records.unreadable_vms(problems) | bad_migrations
    return LeaveFacts(info.name if info else None, current,
                       [s for s in statuses if s is not None], hosts,
                       vms_here(config.name, vms, migrations, unreadable), bool(node_keys),
                       returning_to(config.name, vms))


async def survey(config: HostConfig) -> Survey:
    """This host and the cluster, and the decision: changes nothing."""
    marker = read_marker(config)
    here = here_of(config, marker)
    facts = (await read_facts(config, marker) if here.credentials
            else LeaveFacts(None, (), (), {}, (), False))
    return Survey(here, facts, leave_plan(here, facts))


def by_hand(step: Step, config: HostConfig) -> str:
    """How an admin does a step without Corral."""
    units = "corral-api corral-agent corral-watchdog"
    return {
        "stop_workers": f"`systemctl disable --now {units}`",
        "remove_member": f"`corral cluster remove-node {config.name}` on another host",
        "clear_origins": f"run leave again: it clears `origin: {config.name}` from the "
                         "placement of each VM maintenance moved off this host",
        "delete_node_keys": f"as etcd root: `etcdctl del --prefix /corral/nodes/{config.name}/`",
        "stop_etcd": "`systemctl disable --now corral-etcd`",
        "wipe_etcd_data": f"`rm -rf {config.etcd_data_dir}`",
        "wipe_pki": f"`rm -f {' '.join(str(p) for p in tls_files(config))}`",
        "wipe_config": f"`rm -f {config.config_path} {marker_path(config)}`",
    }[step]


def _write_marker(config: HostConfig, marker: LeaveMarker) -> None:
    path = marker_path(config)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(marker.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


def _wipe_pki(config: HostConfig) -> list[Path]:
    gone = []
    for path in tls_files(config):
        if path.exists():
            path.unlink()
            gone.append(path)
    if config.tls is not None:
        with contextlib.suppress(OSError):  # only when empty: an admin's own files stay
            config.tls.cert.parent.rmdir()
    return gone


class _Run:
    """The steps of one leave, in order, with what was done: a failure says what is left."""

    def __init__(self, config: HostConfig, steps: Sequence[Step], say: Say) -> None:
        self.config = config
        self.left = list(steps)
        self.done: list[str] = []
        self.say = say

    def did(self, what: str) -> None:
        self.say(what)
        self.done.append(what)

    async def step(self, step: Step, action: Callable[[], object]) -> None:
        if step not in self.left:
            return
        try:
            result = action()
            if asyncio.iscoroutine(result):
                await result
        except (LeaveRefused, LeaveError):
            raise
        except Exception as e:
            raise LeaveError(self.failure(step, e)) from e
        self.left.remove(step)

    def failure(self, step: Step, error: Exception) -> str:
        done = "; ".join(self.done) or "nothing"
        left = "\n".join(f"  - {s}: {by_hand(s, self.config)}" for s in self.left)
        return (f"leaving stopped at {step}: {error}\n"
                f"done: {done}\n"
                f"left (run `corral cluster leave` again to finish, or by hand):\n{left}")


async def leave(config: HostConfig, services: Services, found: Survey, say: Say) -> list[str]:
    """Carry out `found`'s plan; what was done, in order. LeaveRefused (nothing changed) or
    LeaveError (what is left and how to finish) otherwise."""
    if isinstance(found.decision, Refusal):
        raise LeaveRefused(f"refused: {found.decision.message}")
    plan = found.decision
    workers: list[ServiceName] = [s for s in services_of(config) if s != ETCD]
    run = _Run(config, plan.steps, say)
    marker = read_marker(config) or LeaveMarker(
        cluster=config.cluster, member_id=plan.member.id if plan.member else None,
        endpoints=[u for m in found.facts.members if m != plan.member for u in m.client_urls],
        started_at=time.time())
    if config.config_path.parent.is_dir():
        _write_marker(config, marker)

    def stop_workers() -> None:
        services.stop(workers)
        run.did(f"stopped and disabled {', '.join(workers)}")

    await run.step("stop_workers", stop_workers)
    if "remove_member" in run.left:
        await _remove(config, services, workers, marker, run)
    if "clear_origins" in run.left:
        await run.step("clear_origins", lambda: _clear_origins(config, marker, run))
    if "delete_node_keys" in run.left:
        await run.step("delete_node_keys", lambda: _delete_node_keys(config, marker, run))

    def stop_etcd() -> None:
        services.stop([ETCD])
        run.did(f"stopped and disabled {ETCD}")

    def wipe_etcd() -> None:
        shutil.rmtree(config.etcd_data_dir)
        run.did(f"deleted the etcd data {config.etcd_data_dir}")

    def wipe_pki() -> None:
        gone = _wipe_pki(config)
        run.did(f"deleted the certificates and keys {', '.join(str(p) for p in gone)}")

    def wipe_config() -> None:
        config.config_path.unlink(missing_ok=True)
        marker_path(config).unlink(missing_ok=True)
        run.did(f"deleted the host config {config.config_path}")

    await run.step("stop_etcd", stop_etcd)
    await run.step("wipe_etcd_data", wipe_etcd)
    await run.step("wipe_pki", wipe_pki)
    await run.step("wipe_config", wipe_config)
    return run.done


def _others(config: HostConfig, marker: LeaveMarker) -> Store:
    """The admin's store on the other members only: this host's own is about to go."""
    return Store(marker.endpoints or config.etcd_endpoints_local_first, timeout=3.0,
                 tls=local.admin_tls(config))


async def _remove(config: HostConfig, services: Services, workers: list[ServiceName],
                  marker: LeaveMarker, run: _Run) -> None:
    """Ask again with the workers stopped (a VM could have been placed here meanwhile), then
    remove the member, its user and its record. Refused while the member is still there:
    the workers start again and nothing else is left changed."""
    def put_back(reason: str) -> LeaveRefused:
        with contextlib.suppress(ServicesError):
            if "stop_workers" not in run.left and workers:
                services.start(workers)
        marker_path(config).unlink(missing_ok=True)
        return LeaveRefused(f"refused: {reason} ({', '.join(workers)} started again; "
                            "nothing else was changed)" if workers else f"refused: {reason}")

    here = here_of(config, marker if marker_path(config).exists() else None)
    try:
        again = leave_plan(here, await read_facts(config, marker))
    except SetupError as e:
        raise put_back(str(e)) from e
    if isinstance(again, Refusal):
        raise put_back(again.message)
    if "remove_member" not in again.steps:
        run.left.remove("remove_member")
        return
    try:
        async with _others(config, marker) as store:
            removed = await remove_member(store, store, config.name, local.host_tls(config))
    except (AdmissionError, StoreError, members.MembershipError, TimeoutError) as e:
        if again.member is not None and await _still_member(config, marker, again.member.id):
            reason = e.refusal.message if isinstance(e, AdmissionError) else str(e)
            raise put_back(reason) from e
        raise LeaveError(run.failure("remove_member", e)) from e
    run.left.remove("remove_member")
    run.did(f"removed {config.name} from cluster {config.cluster}: etcd member "
            f"{removed.member or '-'}, user {removed.user or '-'}, record "
            f"{'deleted' if removed.record else '-'}")


async def _still_member(config: HostConfig, marker: LeaveMarker, member_id: int) -> bool:
    """Whether the cluster still lists the member; False when that cannot be told (then
    the failure is reported as one that may have changed something)."""
    try:
        async with asyncio.timeout(READ_TIMEOUT), _others(config, marker) as store:
            return any(m.id == member_id for m in await members.list_members(store))
    except (TimeoutError, StoreError, members.MembershipError):
        return False


async def _delete_node_keys(config: HostConfig, marker: LeaveMarker, run: _Run) -> None:
    async with _others(config, marker) as store:
        await store.client.delete_prefix(f"{keys.NODES}{config.name}/".encode())
    run.did(f"deleted its node keys {keys.NODES}{config.name}/")


async def _clear_origins(config: HostConfig, marker: LeaveMarker, run: _Run) -> None:
    """VMs maintenance moved off the host stay where they are: nothing would bring them back
    to a host that left, and HA leaves a VM with an origin alone."""
    cleared = []
    async with _others(config, marker) as store:
        for vm in moved_off(config.name, await store.vms()):
            p = vm.placement
            new = p.model_copy(update={"origin": None, "generation": p.generation + 1})
            if not await store.set_placement(vm.vmid, new, vm.placement_rev):
                raise SetupError(f"VM {vm.vmid}: its placement changed meanwhile")
            cleared.append(str(vm.vmid))
    run.did(f"VMs {', '.join(cleared) or '-'} stay where maintenance moved them (their "
            f"return to {config.name} is forgotten)")
