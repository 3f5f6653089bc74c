"""The balancer's records in etcd: its settings, and what its last round decided."""

from __future__ import annotations

from pydantic import Field

from corral.balancer.model import BalanceConfig, Move, Plan
from corral.cluster import keys
from corral.cluster.models import Model
from corral.cluster.records import Problem, decode
from corral.cluster.store import Store
from corral.cluster.view_state import ViewState


class MoveRecord(Model):
    vmid: int
    source: str
    target: str
    reason: str
    gain: float
    cost_s: float
    task: str | None = None  # the migration task, once queued


class BalanceStatus(Model):
    """The last round the manager ran: when, what it saw, what it moved and what it held."""

    at: float
    imbalance: float
    moves: list[MoveRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    held: dict[int, str] = Field(default_factory=dict)


def move_record(move: Move, task: str | None = None) -> MoveRecord:
    return MoveRecord(vmid=move.vmid, source=move.source, target=move.target,
                      reason=move.reason, gain=round(move.gain, 6),
                      cost_s=round(move.cost_s, 3), task=task)


def status_of(plan: Plan, at: float, tasks: dict[int, str]) -> BalanceStatus:
    return BalanceStatus(at=at, imbalance=round(plan.imbalance, 6),
                         moves=[move_record(m, tasks.get(m.vmid)) for m in plan.moves],
                         notes=list(plan.notes), held=dict(sorted(plan.held.items())))


def config_in(state: ViewState) -> tuple[BalanceConfig, list[Problem]]:
    """The settings as the view holds them; the defaults (disabled) when none are stored or
    the record does not decode (reported as a problem, never guessed at)."""
    problems: list[Problem] = []
    if (raw := state.raw_record(keys.BALANCE_CONFIG)) is None:
        return BalanceConfig(), problems
    config = decode(BalanceConfig, keys.BALANCE_CONFIG, raw[0], problems)
    return (config or BalanceConfig(enabled=False)), problems


def status_in(state: ViewState) -> BalanceStatus | None:
    if (raw := state.raw_record(keys.BALANCE_STATUS)) is None:
        return None
    return decode(BalanceStatus, keys.BALANCE_STATUS, raw[0], [])


async def put_config(store: Store, config: BalanceConfig) -> None:
    await store.put(keys.BALANCE_CONFIG, config)


async def put_status(store: Store, status: BalanceStatus) -> None:
    await store.put(keys.BALANCE_STATUS, status)
