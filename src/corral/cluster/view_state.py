"""The cluster's records held in memory, decoded as they change. Pure: the watch-fed view
(`cluster.view`) feeds it a listing and then watch events; readers take snapshots.

A change decodes only what it touches (one VM, one host, one task), so a snapshot of 5,000
VMs costs a sort and a dict, not 15,000 validations. Whatever sequence of listings and events
it was fed, `snapshot()` equals `snapshot_from` over the same records (tests hold it to that).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from corral.cluster import keys, records
from corral.cluster.models import VM, Node, RecentUsage, StorageConfig, Task, VMStatus
from corral.cluster.records import Item, Problem, decode
from corral.cluster.snapshot import ClusterSnapshot, sorted_problems

R = TypeVar("R", Task, StorageConfig)
VM_LOG = 20_000  # VM changes remembered (a few minutes of a busy cluster's)

# The parts of a snapshot that are taken over from the one before while their area is
# unchanged (in this order: its vms, tasks, storages).
SNAPSHOT_AREAS = ("vms", "tasks", "storage")
# Records whose change HA decisions read (see `ha.store.ha_inputs_from`).
HA_KEYS = (keys.HA, keys.HA_STATE, keys.HA_CONFIG)


def area_of(key: str) -> str:
    """What a key's change can affect, coarsely: answers built from one area stay valid
    while only others change (a host's usage sample, every few seconds, leaves VMs alone)."""
    if key.startswith(keys.NODES):
        return "usage" if key.endswith(("/usage", "/recent")) else "nodes"
    for prefix, area in ((keys.VMS, "vms"), (keys.TASKS, "tasks"), (keys.STORAGE, "storage")):
        if key.startswith(prefix):
            return area
    return "ha" if key.startswith(HA_KEYS) else "other"


@dataclass(frozen=True)
class Change:
    key: str
    value: bytes | None  # None: the key was deleted
    revision: int


class ViewState:
    def __init__(self, prefix: str = keys.PREFIX) -> None:
        self.prefix = prefix
        self.revision = 0
        self.ha_revision = 0  # the last revision that touched an HA record
        self.listed_at = 0  # the revision of the last listing
        # (revision, vmid) of the latest VM changes, for answers kept per VM (api.answers);
        # below _vm_log_floor some were dropped.
        self._vm_log: deque[tuple[int, int]] = deque(maxlen=VM_LOG)
        self._vm_log_floor = 0
        self._area_revision: dict[str, int] = {}  # the last change in each area since then
        self.raw: dict[str, tuple[bytes, int]] = {}
        self._vm_fields: dict[int, dict[str, tuple[bytes, int]]] = {}
        self._vms: dict[int, VM] = {}
        self._vms_in_order = True  # _vms iterates in vmid order (a snapshot's order)
        # The VMs by their placement's host, kept as they change, so a snapshot after one
        # VM's change re-sorts that host's VMs only, not every VM in the cluster.
        self._by_node: dict[str, dict[int, VM]] = {}
        self._dirty_nodes: set[str] = set()  # hosts whose VMs changed since the last snapshot
        self._node_lists: dict[str, list[VM]] = {}  # as of the last snapshot, in vmid order
        self._running: dict[str, int] = {}  # as of the last snapshot; hosts with none left out
        self._owed: dict[str, int] = {}  # VMs to return to each host (placement.origin)
        self._node_fields: dict[str, dict[str, bytes]] = {}
        self._nodes: dict[str, Node] = {}
        self._recent: dict[str, tuple[bytes, RecentUsage]] = {}  # decoded, by host
        self._tasks: dict[str, Task] = {}
        self._storages: dict[str, StorageConfig] = {}
        # Records skipped, by what they belong to: ("vm", vmid), ("node", name), ("key", key).
        self._problems: dict[tuple[str, object], list[Problem]] = {}
        self._cached: ClusterSnapshot | None = None
        self._cached_areas: tuple[int, ...] = ()  # SNAPSHOT_AREAS' revisions when it was built
        self._stale = False  # changes applied since it was built

    # --- feeding ---------------------------------------------------------------------------

    def reset(self, items: Iterable[Item], revision: int) -> None:
        """Start again from a listing at revision (the first one, or after a lost watch)."""
        self.__init__(self.prefix)  # type: ignore[misc]
        for key, value, rev in items:
            self._set(key, value, rev)
        self.revision = revision
        self.ha_revision = revision
        self.listed_at = revision
        self._vm_log_floor = revision

    def apply(self, changes: Iterable[Change]) -> list[str]:
        """One watch response's changes, all of one or more whole revisions; returns the keys
        that changed. Events at or below the state's revision were seen already (a watch
        resumed from an older revision) and are skipped."""
        changed: list[str] = []
        for c in changes:
            if c.revision <= self.revision or not c.key.startswith(self.prefix):
                continue
            if c.value is None:
                self._delete(c.key)
            else:
                self._set(c.key, c.value, c.revision)
            if c.key.startswith(HA_KEYS):
                self.ha_revision = c.revision
            self._area_revision[area_of(c.key)] = c.revision
            if c.key.startswith(keys.VMS) and (vmid := records.vmid_of(c.key)) is not None:
                if len(self._vm_log) == VM_LOG:
                    self._vm_log_floor = self._vm_log[0][0]
                self._vm_log.append((c.revision, vmid))
            changed.append(c.key)
        if changed:
            self._stale = True
        return changed

    def advance(self, revision: int) -> None:
        """Every change up to revision has been applied."""
        if revision > self.revision:
            self.revision = revision

    # --- reading ---------------------------------------------------------------------------

    def snapshot(self, now: float) -> ClusterSnapshot:
        cached = self._cached
        if cached is None or cached.revision != self.revision or self._stale:
            # Hosts publish usage every few seconds: a snapshot after such a change takes
            # the VMs, tasks and storages (and their indexes) of the one before when their
            # areas did not change, instead of sorting 5,000 VMs again.
            areas = self.area_revisions(SNAPSHOT_AREAS)
            kept = cached if cached is not None and self._cached_areas else None
            vms_same, tasks_same, storages_same = (
                [a == b for a, b in zip(areas, self._cached_areas, strict=True)] if kept
                else [False, False, False])
            fresh = ClusterSnapshot(
                now=now,
                nodes={name: self._nodes[name] for name in sorted(self._nodes)},
                vms=kept.vms if kept and vms_same else self._vms_copy(),
                tasks=kept.tasks if kept and tasks_same else
                sorted((self._tasks[k] for k in sorted(self._tasks)),
                       key=lambda t: t.created_at),
                storages=kept.storages if kept and storages_same else
                {s.id: s for _, s in sorted(self._storages.items())},
                revision=self.revision,
                problems=sorted_problems(p for ps in self._problems.values() for p in ps),
            )
            if kept is not None and tasks_same:
                fresh.__dict__.update(kept.task_indexes())
            fresh.__dict__.update(self._vm_indexes())
            self._cached, self._cached_areas, self._stale = fresh.indexed(), areas, False
            cached = self._cached
        return cached.at(now)

    # A few records as a snapshot would show them, without building one: with 5,000 VMs a
    # snapshot after a VM changed copies and indexes them all, and one VM's answer needs one.

    def vm(self, vmid: int) -> VM | None:
        return self._vms.get(vmid)

    def vmids(self) -> list[int]:
        """Every VM that decodes, in no particular order."""
        return list(self._vms)

    def vm_problems(self, vmid: int) -> tuple[Problem, ...]:
        """Why VM vmid's records were skipped, if they were."""
        return sorted_problems(self._problems.get(("vm", vmid), ()))

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def online(self) -> frozenset[str]:
        """The hosts alive."""
        return frozenset(name for name, node in self._nodes.items() if node.alive)

    def vmids_on(self, node: str) -> list[int]:
        """The VMs placed on node, in no particular order."""
        return list(self._by_node.get(node, ()))

    def problems_under(self, prefix: str) -> tuple[Problem, ...]:
        """The records skipped under prefix, as a snapshot's `problems` lists them."""
        return sorted_problems(p for ps in self._problems.values() for p in ps
                               if p.key.startswith(prefix))

    def _vms_copy(self) -> dict[int, VM]:
        if not self._vms_in_order:  # a listing, or a VM with a lower id than the last
            self._vms = {vmid: self._vms[vmid] for vmid in sorted(self._vms)}
            self._vms_in_order = True
        return dict(self._vms)

    def _vm_indexes(self) -> dict[str, object]:
        """The snapshot's VM indexes (`ClusterSnapshot.vms_on`, `running_on`), rebuilt for the
        hosts whose VMs changed since the last snapshot and shared for the others (a host's
        list is replaced, never changed in place)."""
        for node in self._dirty_nodes:
            members = self._by_node.get(node)
            if not members:
                self._node_lists.pop(node, None)
                self._running.pop(node, None)
                continue
            self._node_lists[node] = [members[vmid] for vmid in sorted(members)]
            running = sum(1 for vm in members.values() if vm.runtime is not None
                          and vm.runtime.status is VMStatus.RUNNING)
            if running:
                self._running[node] = running
            else:
                self._running.pop(node, None)
        self._dirty_nodes.clear()
        return {"_vms_by_node": dict(self._node_lists), "_running_by_node": dict(self._running),
                "_origins": frozenset(self._owed)}

    def area_revisions(self, areas: tuple[str, ...]) -> tuple[int, ...]:
        """For each area, the revision of its last change (or of the last listing): equal
        tuples mean the same records in those areas."""
        return tuple(self._area_revision.get(a, self.listed_at) for a in areas)

    def vms_changed_since(self, revision: int) -> set[int] | None:
        """The VMs whose records changed after revision; None when that is not known (the
        state was listed anew since, or the log no longer reaches back that far)."""
        if revision < self._vm_log_floor:
            return None
        out: set[int] = set()
        for rev, vmid in reversed(self._vm_log):
            if rev <= revision:
                break
            out.add(vmid)
        return out

    def vm_records(self) -> Mapping[int, Mapping[str, tuple[bytes, int]]]:
        """Every VM's raw records by field, whether they make a VM or not (half-written,
        unreadable): read-only, and only until the next change."""
        return self._vm_fields

    def ha_items(self) -> list[Item]:
        """The HA records (settings, rules, fence confirmations, HA state), in key order."""
        return sorted((k, v, rev) for k, (v, rev) in self.raw.items() if k.startswith(HA_KEYS))

    def raw_record(self, key: str) -> tuple[bytes, int] | None:
        """One record as etcd holds it (value, mod revision), or None."""
        return self.raw.get(key)

    def items(self, prefix: str = "") -> list[Item]:
        """The raw records under prefix, in key order (as an etcd listing gives them)."""
        return [(k, v, rev) for k, (v, rev) in sorted(self.raw.items()) if k.startswith(prefix)]

    # --- one record ------------------------------------------------------------------------

    def _set(self, key: str, value: bytes, rev: int) -> None:
        self.raw[key] = (value, rev)
        self._redecode(key)

    def _delete(self, key: str) -> None:
        self.raw.pop(key, None)
        self._redecode(key)

    def _redecode(self, key: str) -> None:
        """Decode again the thing key belongs to, from the records held now (the same
        grouping as `records.vms_from` and `records.nodes_from`)."""
        self._problems.pop(("key", key), None)
        value = self.raw.get(key)
        if key.startswith(keys.VMS):
            field = keys.split(key, keys.VMS)[1]
            vmid = records.vmid_of(key)
            if vmid is None:
                self._key_problem(key, value, "not a VM key (/corral/vms/<vmid>/<field>)")
                return
            vm_fields = self._vm_fields.setdefault(vmid, {})
            if value is None:
                vm_fields.pop(field, None)
            else:
                vm_fields[field] = value
            self._vm(vmid)
        elif key.startswith(keys.NODES):
            name, field = keys.split(key, keys.NODES)
            if not name or not field:
                self._key_problem(key, value, "not a host key (/corral/nodes/<name>/<field>)")
                return
            node_fields = self._node_fields.setdefault(name, {})
            if value is None:
                node_fields.pop(field, None)
            else:
                node_fields[field] = value[0]
            self._node(name)
        elif key.startswith(keys.TASKS):
            self._one(key, value, Task, self._tasks)
        elif key.startswith(keys.STORAGE):
            self._one(key, value, StorageConfig, self._storages)

    def _key_problem(self, key: str, value: object, what: str) -> None:
        if value is not None:
            self._problems[("key", key)] = [Problem(key, what)]

    def _vm(self, vmid: int) -> None:
        fields = self._vm_fields.get(vmid, {})
        problems: list[Problem] = []
        vm = records.vm_from(vmid, fields, problems) if fields else None
        old = self._vms.pop(vmid, None) if vm is None else self._vms.get(vmid)
        if vm is not None:
            if old is None and self._vms and vmid < next(reversed(self._vms)):
                self._vms_in_order = False
            self._vms[vmid] = vm
        self._index(vmid, old, vm)
        if not fields:
            del self._vm_fields[vmid]
        self._set_problems(("vm", vmid), problems)

    def _index(self, vmid: int, old: VM | None, new: VM | None) -> None:
        if old is not None:
            members = self._by_node[old.placement.node]
            del members[vmid]
            if not members:
                del self._by_node[old.placement.node]
            self._dirty_nodes.add(old.placement.node)
            if (origin := old.placement.origin) is not None:
                self._owed[origin] -= 1
                if not self._owed[origin]:
                    del self._owed[origin]
        if new is not None:
            self._by_node.setdefault(new.placement.node, {})[vmid] = new
            self._dirty_nodes.add(new.placement.node)
            if (origin := new.placement.origin) is not None:
                self._owed[origin] = self._owed.get(origin, 0) + 1

    def _node(self, name: str) -> None:
        fields = self._node_fields.get(name, {})
        problems: list[Problem] = []
        if fields:
            self._nodes[name] = self._node_from(name, fields, problems)
        else:
            self._nodes.pop(name, None)
            self._recent.pop(name, None)
            del self._node_fields[name]
        self._set_problems(("node", name), problems)

    def _node_from(self, name: str, fields: dict[str, bytes], problems: list[Problem]
                   ) -> Node:
        """As `records.node_from`, but a host's recent usage (its biggest record: KiBs,
        written every 30 s, where its usage sample changes every 5 s) is decoded again only
        when its bytes changed."""
        raw, kept = fields.get("recent"), self._recent.get(name)
        if raw is not None and kept is not None and kept[0] == raw:
            rest = {f: v for f, v in fields.items() if f != "recent"}
            return replace(records.node_from(name, rest, problems), recent=kept[1])
        node = records.node_from(name, fields, problems)
        if raw is not None and node.recent is not None:
            self._recent[name] = (raw, node.recent)
        else:
            self._recent.pop(name, None)
        return node

    def _one(self, key: str, value: tuple[bytes, int] | None, cls: type[R],
             into: dict[str, R]) -> None:
        problems: list[Problem] = []
        found = decode(cls, key, value[0], problems) if value is not None else None
        if found is None:
            into.pop(key, None)
        else:
            into[key] = found
        self._set_problems(("key", key), problems)

    def _set_problems(self, owner: tuple[str, object], problems: list[Problem]) -> None:
        if problems:
            self._problems[owner] = problems
        else:
            self._problems.pop(owner, None)
