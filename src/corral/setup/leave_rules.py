"""Whether a host may take itself out of its cluster (`corral cluster leave`), and the steps
that do it, as plain data. Pure: `setup.leave` reads the host and etcd and acts on these.

A leave is refused, and changes nothing, when removing the host's etcd member would cost the
cluster its quorum or its last voters (`removal_rules`, as for `remove-node`), when any VM is
placed on the host, runs there or migrates to or from it, when a VM's records do not read
(it could be one of those), and when the cluster does not count the host as a member.

The steps run in an order that never leaves a half-member behind: the host's workers stop
first (a host with no agent is one the cluster already copes with, and the agent disarms its
watchdog as it goes), then the cluster forgets the member, its user, its record and its node
keys, and only then does the host stop its etcd and delete what would let it come back by
accident: its etcd data, its certificates and keys, its host config. A leave that stopped
half-way is finished by running it again: what is done already is not in the next plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from corral.cluster.membership import EndpointStatus, Member, member_label
from corral.cluster.models import VM, ClusterHost, HostRole
from corral.manager.maintenance import moved_off
from corral.setup.join_rules import Refusal
from corral.setup.removal_rules import removal_refusal

Step = Literal["stop_workers", "remove_member", "clear_origins", "delete_node_keys",
               "stop_etcd", "wipe_etcd_data", "wipe_pki", "wipe_config"]
# In the order they run; the cluster's steps come before anything that makes the host unable
# to talk to it.
STEPS: tuple[Step, ...] = ("stop_workers", "remove_member", "clear_origins", "delete_node_keys",
                           "stop_etcd", "wipe_etcd_data", "wipe_pki", "wipe_config")
SHOWN_VMS = 10  # a refusal names this many VMs, and counts the rest


@dataclass(frozen=True)
class Here:
    """The host that leaves, from its config and its disk."""

    cluster: str
    name: str
    role: HostRole
    member_name: str
    peer_url: str
    etcd_data: bool  # its etcd data dir holds anything
    pki_files: bool  # any of its certificates or keys is still there
    credentials: bool  # the files it reaches the cluster with are all there
    leaving: int | None  # the member id an earlier, unfinished leave removed (its marker)


@dataclass(frozen=True)
class LeaveFacts:
    """What the cluster says, read with the host's credentials. A witness reads the members
    only (its etcd user has no key permission): it passes no hosts and no VMs."""

    name: str | None  # the cluster's recorded name (None: not read, or none recorded)
    members: Sequence[Member]
    statuses: Sequence[EndpointStatus]
    hosts: Mapping[str, ClusterHost]
    vms_here: Sequence[str]  # what `vms_here` says
    node_keys: bool  # anything is left under /corral/nodes/<name>/
    # VMs maintenance moved off the host and would bring back (their origin is the host):
    # once it has left, nothing would, and HA leaves a VM with an origin alone.
    returning: Sequence[int] = ()


@dataclass(frozen=True)
class Plan:
    member: Member | None  # the etcd member to remove; None: the cluster has none of it
    record: bool  # the host's ClusterHost record is still there (its user goes with it)
    steps: tuple[Step, ...]
    returning: tuple[int, ...] = ()  # VMs whose origin (maintenance's way back) is cleared

    @property
    def resuming(self) -> bool:
        """The cluster forgot the host already: only this host's own steps are left."""
        return self.member is None and not self.record


def own_member(here: Here, members: Sequence[Member], record: ClusterHost | None
               ) -> Member | None:
    """The host's etcd member: the one its record names, else the one with its member name
    or its peer URL (a member added for it that never started has no name)."""
    if record is not None and record.member_id is not None:
        found = next((m for m in members if m.id == record.member_id), None)
        if found is not None:
            return found
    return next((m for m in members
                 if m.name == here.member_name or here.peer_url in m.peer_urls), None)


def returning_to(name: str, vms: Iterable[VM]) -> list[int]:
    """The VMs maintenance moved off the host, to bring back once it ends."""
    return [vm.vmid for vm in moved_off(name, vms)]


def vms_here(name: str, vms: Iterable[VM], migrations: Mapping[int, tuple[str, str]],
             unreadable: Iterable[int]) -> list[str]:
    """Each VM that ties the host down, with why: placed on it, reported running on it, or
    migrating to or from it (`migrations`: vmid -> source and target); and each VM whose
    records do not read, which could be any of those."""
    out = []
    for vm in vms:
        label = f"{vm.config.name} ({vm.vmid})"
        if vm.placement.node == name:
            out.append(f"{label}: placed here")
        elif vm.runtime is not None and vm.runtime.node == name:
            out.append(f"{label}: reported on this host ({vm.runtime.status})")
        elif vm.vmid in migrations and name in migrations[vm.vmid]:
            source, target = migrations[vm.vmid]
            out.append(f"{label}: migrating {source} -> {target}")
    out += [f"VM {vmid}: its records do not read (it could be placed here)"
            for vmid in sorted(unreadable)]
    return out


def _named(items: Sequence[str]) -> str:
    shown = "; ".join(items[:SHOWN_VMS])
    more = len(items) - SHOWN_VMS
    return shown + (f"; and {more} more" if more > 0 else "")


def leave_plan(here: Here, facts: LeaveFacts) -> Plan | Refusal:
    """The steps that take `here` out of its cluster, or why it may not leave."""
    if facts.name is not None and facts.name != here.cluster:
        return Refusal("conflict", f"this host's config is of cluster {here.cluster!r}, but "
                       f"the etcd members it names are of cluster {facts.name!r}: fix the "
                       "host config before leaving", "cluster")
    if facts.vms_here:
        return Refusal("conflict", f"VMs are still on {here.name}: {_named(facts.vms_here)}. "
                       f"Move them away first (`corral node maintenance enable {here.name} "
                       "--wait` empties the host), or delete them")
    if not here.credentials:
        if here.etcd_data:
            return Refusal("conflict", f"{here.name} cannot ask the cluster whether it is "
                           "still a member: its certificate or key files are missing, but it "
                           "still has etcd data. Restore the files, or remove it with "
                           f"`corral cluster remove-node {here.name}` on another host and "
                           "delete its etcd data by hand")
        # Only a leave that got past the cluster's steps deletes the files (after the etcd
        # data): what is left is this host's own.
        facts = LeaveFacts(None, (), (), {}, (), False)
    record = facts.hosts.get(here.name)
    member = own_member(here, facts.members, record)
    if member is not None:
        if here.role == "witness":
            return Refusal("forbidden", f"a witness has no admin certificate to remove its "
                           f"own member: run `corral cluster remove-node {here.name}` on a "
                           "cluster host, then `corral cluster leave` here again to finish "
                           "on this machine")
        reason = removal_refusal(member, facts.members, facts.statuses)
        if reason is not None:
            return Refusal("conflict", f"{here.name} may not leave: {reason}")
    elif record is not None and (here.leaving is None or here.leaving != record.member_id):
        return Refusal("conflict", f"{here.name} is not a member of cluster {here.cluster}: "
                       "its etcd member is gone but the cluster still records it, so it was "
                       "dropped (`corral cluster rejoin` takes it back) or a removal stopped "
                       f"half-way (`corral cluster remove-node {here.name}` on another host "
                       "finishes it)")
    wanted: dict[Step, bool] = {
        "stop_workers": here.role == "host",
        "remove_member": member is not None or record is not None,
        # Before the node keys: while the host's maintenance request is there, the manager
        # does not try to bring the VMs back to it.
        "clear_origins": bool(facts.returning),
        "delete_node_keys": facts.node_keys,
        "stop_etcd": True,
        "wipe_etcd_data": here.etcd_data,
        "wipe_pki": here.pki_files,
        "wipe_config": True,
    }
    return Plan(member=member, record=record is not None,
                steps=tuple(s for s in STEPS if wanted[s]), returning=tuple(facts.returning))


def summary(here: Here, plan: Plan) -> str:
    """What the admin is asked to confirm."""
    if plan.resuming:
        return (f"{here.name} is no longer a member of cluster {here.cluster}: finish leaving "
                "on this host (stop its services, delete its etcd data, certificates and "
                "host config)?")
    member = member_label(plan.member) if plan.member else "none"
    returning = (f"; {len(plan.returning)} VM(s) maintenance moved off it stay where they are"
                 if plan.returning else "")
    return (f"leave cluster {here.cluster}? {here.name} (etcd member {member}) is removed from "
            "it, its services are stopped and disabled, its etcd data, certificates and host "
            f"config deleted; VMs placed on this host: none{returning}")
