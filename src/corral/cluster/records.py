"""Records as etcd stores them (JSON of the models) and back. Pure: the store and the
snapshot both decode through here, so every reader sees a record the same way.

One record that does not decode (bad JSON, a wrong type, a missing field, a key that does not
parse) must not stop the cluster: the decoders return the good records and a `Problem` for
each one skipped. A VM whose config or placement is unreadable still exists: readers get its
id (`unreadable_vms`) so that nothing takes it for deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from corral.cluster import keys
from corral.cluster.models import (
    VM,
    ClusterHost,
    HostShutdown,
    Node,
    NodeInfo,
    NodeRequest,
    NodeUsage,
    Placement,
    RecentUsage,
    StorageConfig,
    Task,
    VMConfig,
    VMRuntime,
)

M = TypeVar("M", bound=BaseModel)
Item = tuple[str, bytes, int]  # key, value, mod revision
MAX_WHAT = 200  # a problem is a line in a status table, not a dump of the record


@dataclass(frozen=True)
class Problem:
    """A record that was skipped: its key, and what is wrong with it (short, for humans)."""

    key: str
    what: str

    def __str__(self) -> str:
        return f"{self.key}: {self.what}"


class UnreadableRecord(ValueError):
    """A record asked for by its key exists but does not decode. Not "absent": whoever gets
    this must not act as if the thing were gone."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems) or "unreadable record")
        self.problems = list(problems)


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def load(cls: type[M], raw: bytes) -> M:
    return cls.model_validate_json(raw)


def what_is_wrong(error: ValidationError, at: str = "") -> str:
    """'memory_mb: Input should be a valid integer', 'not JSON: EOF while parsing ...';
    at: where in the record the validated part sits ("vms.101")."""
    errors = error.errors(include_url=False, include_input=False)
    if not errors:
        return str(error)[:MAX_WHAT]
    first = errors[0]
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "json_invalid":
        text = f"not JSON: {(first.get('ctx') or {}).get('error', msg)}"
    else:
        field = ".".join(([at] if at else []) + [str(p) for p in first["loc"]])
        text = f"{field}: {msg}" if field else msg
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return text[:MAX_WHAT]


def decode(cls: type[M], key: str | Callable[[], str], raw: bytes, problems: list[Problem]
           ) -> M | None:
    """The record at key, or None with a problem added when it does not decode. key may be
    a function that makes it: most records decode, and then no key is built."""
    try:
        return load(cls, raw)
    except ValidationError as e:
        problems.append(Problem(key if isinstance(key, str) else key(), what_is_wrong(e)))
        return None


def load_or_raise(cls: type[M], key: str, raw: bytes) -> M:
    """For a read of one record: UnreadableRecord (naming the key) instead of a bare
    validation error."""
    problems: list[Problem] = []
    found = decode(cls, key, raw, problems)
    if found is None:
        raise UnreadableRecord(problems)
    return found


def _vmid(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def vmid_of(key: str) -> int | None:
    """The VM a /corral/vms/<vmid>/... or /corral/ha/<vmid> key belongs to, if it parses."""
    for prefix in (keys.VMS, keys.HA):
        if key.startswith(prefix):
            return _vmid(keys.split(key, prefix)[0])
    return None


def first_free_vmid(used: Iterable[int]) -> int:
    """The lowest VM id from 100 up that used does not hold."""
    taken = set(used)
    vmid = 100
    while vmid in taken:
        vmid += 1
    return vmid


def name_owner(name: str, value: bytes | None) -> int | None:
    """The VM a name claim (its key's value) gives the name to; UnreadableRecord when the
    claim does not say: the name is taken all the same."""
    if value is None:
        return None
    if not value.isdigit():
        raise UnreadableRecord([Problem(keys.name(name), "not a VM id")])
    return int(value)


def unreadable_vms(problems: Iterable[Problem]) -> frozenset[int]:
    """VMs that exist but whose config or placement does not decode."""
    out: set[int] = set()
    for p in problems:
        if p.key.startswith(keys.VMS) and keys.split(p.key, keys.VMS)[1] in ("config",
                                                                              "placement"):
            vmid = vmid_of(p.key)
            if vmid is not None:
                out.add(vmid)
    return frozenset(out)


def unreadable_requests(problems: Iterable[Problem]) -> frozenset[str]:
    """Hosts whose operator request (maintenance) does not decode: nobody knows whether they
    are in maintenance, so nothing should be decided on it."""
    return frozenset(
        keys.split(p.key, keys.NODES)[0] for p in problems
        if p.key.startswith(keys.NODES) and keys.split(p.key, keys.NODES)[1] == "request")


# --- nodes -----------------------------------------------------------------------------------


def nodes_from(items: list[Item]) -> tuple[list[Node], list[Problem]]:
    fields: dict[str, dict[str, bytes]] = {}
    problems: list[Problem] = []
    for key, value, _ in items:
        if key.startswith(keys.NODES):
            name, field = keys.split(key, keys.NODES)
            if not name or not field:
                problems.append(Problem(key, "not a host key (/corral/nodes/<name>/<field>)"))
                continue
            # A field this version does not know is a newer version's: not ours to judge.
            fields.setdefault(name, {})[field] = value
    nodes = [node_from(name, f, problems) for name, f in sorted(fields.items())]
    return nodes, problems


def node_from(name: str, f: dict[str, bytes], problems: list[Problem] | None = None) -> Node:
    """A host from its records; one that does not decode counts as absent (and is reported
    in problems): without facts the host is `unknown` to HA and gets no VMs."""
    found = problems if problems is not None else []

    def part(field: str, cls: type[M]) -> M | None:
        raw = f.get(field)
        return None if raw is None else decode(cls, lambda: keys.node(name, field), raw, found)

    return Node(
        name=name,
        info=part("info", NodeInfo),
        alive="alive" in f,
        usage=part("usage", NodeUsage),
        request=part("request", NodeRequest),
        shutdown=part("shutdown", HostShutdown),
        recent=part("recent", RecentUsage),
    )


# --- storage ---------------------------------------------------------------------------------


def storages_from(items: list[Item]) -> tuple[dict[str, StorageConfig], list[Problem]]:
    problems: list[Problem] = []
    out: dict[str, StorageConfig] = {}
    for key, value, _ in items:
        if key.startswith(keys.STORAGE):
            s = decode(StorageConfig, key, value, problems)
            if s is not None:
                out[s.id] = s
    return out, problems


# --- VMs -------------------------------------------------------------------------------------


def vms_from(items: list[Item]) -> tuple[list[VM], list[Problem]]:
    fields: dict[int, dict[str, tuple[bytes, int]]] = {}
    problems: list[Problem] = []
    for key, value, rev in items:
        if key.startswith(keys.VMS):
            head, field = keys.split(key, keys.VMS)
            vmid = _vmid(head)
            if vmid is None:
                problems.append(Problem(key, "not a VM key (/corral/vms/<vmid>/<field>)"))
                continue
            fields.setdefault(vmid, {})[field] = (value, rev)
    out = [vm_from(vmid, f, problems) for vmid, f in sorted(fields.items())]
    return [vm for vm in out if vm is not None], problems


def vm_from(vmid: int, f: dict[str, tuple[bytes, int]], problems: list[Problem] | None = None
            ) -> VM | None:
    """The VM from its records; None when it is half-written or half-deleted (no config or
    no placement), or when config or placement does not decode (then with a problem: see
    `unreadable_vms`). A runtime that does not decode counts as no report yet: the owning
    agent writes a fresh one."""
    found = problems if problems is not None else []
    if "config" not in f or "placement" not in f:
        # Half-deleted or half-written: not a VM. One of the two that does not decode is still
        # reported (and keeps its id taken): it was put there by hand, or by a writer gone
        # wrong, and an operator should hear of it.
        if "config" in f:
            decode(VMConfig, keys.vm(vmid, "config"), f["config"][0], found)
        if "placement" in f:
            decode(Placement, keys.vm(vmid, "placement"), f["placement"][0], found)
        return None
    config = decode(VMConfig, lambda: keys.vm(vmid, "config"), f["config"][0], found)
    placement = decode(Placement, lambda: keys.vm(vmid, "placement"), f["placement"][0], found)
    runtime = (decode(VMRuntime, lambda: keys.vm(vmid, "runtime"), f["runtime"][0], found)
               if "runtime" in f else None)
    if config is None or placement is None:
        return None
    if config.vmid != vmid:
        found.append(Problem(keys.vm(vmid, "config"), f"holds the config of VM {config.vmid}"))
        return None
    return VM(config=config, placement=placement, placement_rev=f["placement"][1],
              runtime=runtime)


def vm_or_raise(vmid: int, f: dict[str, tuple[bytes, int]]) -> VM | None:
    """One VM for a reader that acts on it: None only when it does not exist."""
    problems: list[Problem] = []
    vm = vm_from(vmid, f, problems)
    if vm is None and vmid in unreadable_vms(problems):
        raise UnreadableRecord(problems)
    return vm


# --- tasks -----------------------------------------------------------------------------------


def tasks_from(items: list[Item]) -> tuple[list[Task], list[Problem]]:
    problems: list[Problem] = []
    out = [t for k, v, _ in items if k.startswith(keys.TASKS)
           if (t := decode(Task, k, v, problems)) is not None]
    return sorted(out, key=lambda t: t.created_at), problems


# --- the cluster's hosts ---------------------------------------------------------------------


def cluster_hosts_from(items: list[Item]) -> tuple[dict[str, ClusterHost], list[Problem]]:
    """The hosts and witnesses admitted, by name. A record that does not decode is a problem,
    and its name (the key's) is still taken: see `cluster_host_names`."""
    problems: list[Problem] = []
    out: dict[str, ClusterHost] = {}
    for key, value, _ in items:
        if key.startswith(keys.CLUSTER_HOSTS):
            host = decode(ClusterHost, key, value, problems)
            if host is not None:
                if host.name != key.removeprefix(keys.CLUSTER_HOSTS):
                    problems.append(Problem(key, f"holds the record of host {host.name!r}"))
                    continue
                out[host.name] = host
    return out, problems


def cluster_host_names(items: list[Item]) -> set[str]:
    """Every name under /corral/cluster/hosts/, whether its record decodes or not."""
    return {k.removeprefix(keys.CLUSTER_HOSTS) for k, _, _ in items
            if k.startswith(keys.CLUSTER_HOSTS)}
