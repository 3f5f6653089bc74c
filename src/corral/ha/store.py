"""Reading and writing HA records in etcd.

HA inputs are read separately from the cluster snapshot;
`read_all` does both from one etcd read, so the manager decides on parts that agree.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from corral.balancer.store import config_in
from corral.cluster import keys
from corral.cluster.records import (
    Problem,
    UnreadableRecord,
    decode,
    dump,
    load,
    vmid_of,
    what_is_wrong,
)
from corral.cluster.snapshot import ClusterSnapshot, snapshot_from
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.cluster.view_state import ViewState
from corral.ha.models import (
    FenceConfirmation,
    HAConfig,
    HAInputs,
    HARequest,
    HARule,
    HASettings,
    HAState,
    NodeHAState,
    VMHAState,
)


def ha_inputs_from(items: list[tuple[str, bytes, int]]) -> HAInputs:
    """HA records from an etcd read: the ones that decode, and a problem for each other."""
    settings: dict[int, HASettings] = {}
    rules: list[HARule] = []
    fenced: dict[str, FenceConfirmation] = {}
    state = HAState()
    problems: list[Problem] = []
    for key, value, _ in items:
        if key == keys.HA_STATE:
            state = state_from(key, value, problems)
        elif key.startswith(keys.HA_RULES):
            if (rule := decode(HARule, key, value, problems)) is not None:
                rules.append(rule)
        elif key.startswith(keys.HA_FENCED):
            if (conf := decode(FenceConfirmation, key, value, problems)) is not None:
                fenced[conf.node] = conf
        elif key.startswith(keys.HA):
            vmid = vmid_of(key)
            if vmid is None:
                problems.append(Problem(key, "not an HA key (/corral/ha/<vmid>)"))
            elif (s := decode(HASettings, key, value, problems)) is not None:
                if s.vmid == vmid:
                    settings[s.vmid] = s
                else:
                    problems.append(Problem(key, f"holds the HA settings of VM {s.vmid}"))
    return HAInputs(settings=settings, rules=sorted(rules, key=lambda r: r.name), state=state,
                    fenced=fenced, problems=tuple(problems))


def state_from(key: str, raw: bytes, problems: list[Problem]) -> HAState:
    """The manager's HA state; when it does not decode as a whole, the entries that do (one
    VM's entry in a newer version's shape must not wipe what HA knows of every host)."""
    try:
        return load(HAState, raw)
    except ValidationError as e:
        whole = what_is_wrong(e)
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        problems.append(Problem(key, whole))
        return HAState()
    kept: dict[str, dict[str, Any]] = {}
    for part, cls in (("vms", VMHAState), ("nodes", NodeHAState)):
        entries = data.get(part, {})
        kept[part] = {}
        if not isinstance(entries, dict):
            problems.append(Problem(key, f"{part}: not a mapping"))
            continue
        for name, entry in entries.items():
            try:
                if part == "vms":
                    int(name)
                cls.model_validate(entry)
            except ValidationError as e:
                problems.append(Problem(key, what_is_wrong(e, at=f"{part}.{name}")))
            except ValueError:
                problems.append(Problem(key, f"{part}.{name}: not a VM id"))
            else:
                kept[part][name] = entry
    return HAState.model_validate(kept)


async def read_inputs(store: Store) -> HAInputs:
    items = await store.raw_prefix(keys.HA)
    kv = await store.client.get(keys.HA_STATE.encode())
    state = [(keys.HA_STATE, kv.value, int(kv.mod_revision))] if kv is not None else []
    return ha_inputs_from(items + state)


async def read_all(store: Store, now: float) -> tuple[ClusterSnapshot, HAInputs]:
    items, revision = await store.snapshot(keys.PREFIX)
    return snapshot_from(items, revision, now), ha_inputs_from(items)


async def read_all_from(view: ClusterView, now: float) -> tuple[ClusterSnapshot, HAInputs]:
    """`read_all` from a watch-fed view: consistent as a read of etcd, and HA records are
    decoded again only when one of them changed."""
    snap = await view.current(now)
    scoring, _ = config_in(view.state)  # an unreadable one: reported by the manager
    return snap, replace(inputs_of(view.state), scoring=scoring)


_decoded: weakref.WeakKeyDictionary[ViewState, tuple[int, HAInputs]] = (
    weakref.WeakKeyDictionary())


def inputs_of(state: ViewState) -> HAInputs:
    """The HA inputs of what state holds now."""
    cached = _decoded.get(state)
    if cached is None or cached[0] != state.ha_revision:
        cached = (state.ha_revision, ha_inputs_from(state.ha_items()))
        _decoded[state] = cached
    return cached[1]


async def get_settings(store: Store, vmid: int) -> HASettings | None:
    return (await store.get(keys.ha(vmid), HASettings))[0]


async def put_settings(store: Store, settings: HASettings) -> None:
    await store.put(keys.ha(settings.vmid), settings)


async def delete_settings(store: Store, vmid: int) -> None:
    await store.delete(keys.ha(vmid))


async def get_rule(store: Store, name: str) -> HARule | None:
    return (await store.get(keys.ha_rule(name), HARule))[0]


async def put_rule(store: Store, rule: HARule) -> None:
    await store.put(keys.ha_rule(rule.name), rule)


async def delete_rule(store: Store, name: str) -> None:
    await store.delete(keys.ha_rule(name))


async def get_config(store: Store) -> HAConfig:
    """The cluster's HA settings (defaults when none were set)."""
    return (await store.get(keys.HA_CONFIG, HAConfig))[0] or HAConfig()


async def put_config(store: Store, config: HAConfig) -> None:
    await store.put(keys.HA_CONFIG, config)


async def put_state(store: Store, state: HAState) -> None:
    await store.put(keys.HA_STATE, state)


async def confirm_fenced(store: Store, conf: FenceConfirmation) -> bool:
    """Store a power-off confirmation, only if the host holds no lease, in one transaction:
    a host whose lease lives (or came back between a check and a write) is not off. False
    when refused. The manager clears the confirmation once the host holds a lease again."""
    t = store.client.transactions
    alive = keys.node(conf.node, "alive").encode()
    ok, _ = await store.client.transaction(
        compare=[t.version(alive) == 0],
        success=[t.put(keys.ha_fenced(conf.node).encode(), dump(conf))],
        failure=[])
    return bool(ok)


# What the normal VM actions mean for an HA VM's requested state (Proxmox does the same):
# an operator who stops an HA VM wants it to stay stopped, not to be restarted by HA.
FOLLOW = {"start": HARequest.STARTED, "resume": HARequest.STARTED,
          "stop": HARequest.STOPPED, "shutdown": HARequest.STOPPED}


async def follow_vm_action(store: Store, vmid: int, action: str) -> None:
    """Called after the API queued `action` on vmid (after, so the manager sees the task
    in flight and waits for it rather than queuing one of its own)."""
    want = FOLLOW.get(action)
    try:
        s = await get_settings(store, vmid)
    except UnreadableRecord:
        return  # HA leaves a VM with unreadable settings as it is; `ha status` shows why
    if want is None or s is None or s.state in (HARequest.IGNORED, want):
        return
    await put_settings(store, s.model_copy(update={"state": want}))
