"""Reading and writing HA records in etcd.

HA inputs are read separately from the cluster snapshot;
`read_all` does both from one etcd read, so the manager decides on parts that agree.
"""

from __future__ import annotations

from corral.cluster import keys
from corral.cluster.records import dump, load
from corral.cluster.snapshot import ClusterSnapshot, snapshot_from
from corral.cluster.store import Store
from corral.ha.models import (
    FenceConfirmation,
    HAInputs,
    HARequest,
    HARule,
    HASettings,
    HAState,
)


def ha_inputs_from(items: list[tuple[str, bytes, int]]) -> HAInputs:
    settings: dict[int, HASettings] = {}
    rules: list[HARule] = []
    fenced: dict[str, FenceConfirmation] = {}
    state = HAState()
    for key, value, _ in items:
        if key == keys.HA_STATE:
            state = load(HAState, value)
        elif key.startswith(keys.HA_RULES):
            rules.append(load(HARule, value))
        elif key.startswith(keys.HA_FENCED):
            conf = load(FenceConfirmation, value)
            fenced[conf.node] = conf
        elif key.startswith(keys.HA):
            s = load(HASettings, value)
            settings[s.vmid] = s
    return HAInputs(settings=settings, rules=sorted(rules, key=lambda r: r.name), state=state,
                    fenced=fenced)


async def read_inputs(store: Store) -> HAInputs:
    items = await store.raw_prefix(keys.HA)
    state, _ = await store.get(keys.HA_STATE, HAState)
    return ha_inputs_from(items + ([(keys.HA_STATE, state.model_dump_json().encode(), 0)]
                                   if state else []))


async def read_all(store: Store, now: float) -> tuple[ClusterSnapshot, HAInputs]:
    items, revision = await store.snapshot(keys.PREFIX)
    return snapshot_from(items, revision, now), ha_inputs_from(items)


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
    s = await get_settings(store, vmid)
    if want is None or s is None or s.state in (HARequest.IGNORED, want):
        return
    await put_settings(store, s.model_copy(update={"state": want}))
