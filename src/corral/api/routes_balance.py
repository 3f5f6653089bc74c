"""The load balancer: its settings, its last round, a plan on the cluster as it is now, and
applying that plan (each move a normal migration task whose log says why)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from corral.api.deps import StoreDep, ViewDep
from corral.api.errors import ApiError, invalid, loc_to_field
from corral.balancer.model import BalanceConfig
from corral.balancer.store import (
    BalanceStatus,
    MoveRecord,
    config_in,
    move_record,
    put_config,
    status_in,
)
from corral.cluster.models import Request
from corral.ha.store import read_all_from
from corral.manager.balance import decide_balance

router = APIRouter(prefix="/balance", tags=["balance"])


class BalanceOverview(BaseModel):
    config: BalanceConfig
    # The settings record does not decode: the balancer is off until it is written again.
    config_problem: str | None = None
    last_round: BalanceStatus | None = None


class PlanAnswer(BaseModel):
    imbalance: float
    moves: list[MoveRecord]
    notes: list[str]
    held: dict[int, str]
    applied: bool = False  # the moves were queued (POST /balance/apply without dry_run)


class ApplyRequest(Request):
    dry_run: bool = False


@router.get("", response_model=BalanceOverview)
async def overview(view: ViewDep) -> BalanceOverview:
    await view.current(time.time())  # read-your-writes: the view has caught up with etcd
    config, problems = config_in(view.state)
    return BalanceOverview(config=config, last_round=status_in(view.state),
                           config_problem=problems[0].what if problems else None)


@router.get("/config", response_model=BalanceConfig)
async def get_config(view: ViewDep) -> BalanceConfig:
    await view.current(time.time())
    return config_in(view.state)[0]


@router.put("/config", response_model=BalanceConfig)
async def set_config(body: dict[str, Any], store: StoreDep, view: ViewDep) -> BalanceConfig:
    """Change some settings; the others keep their values. An unknown setting or a value out
    of range is refused naming it, and nothing changes."""
    for name in body:
        if name not in BalanceConfig.model_fields:
            raise invalid(f"{name}: no such setting (settings: "
                          f"{', '.join(BalanceConfig.model_fields)})", name)
    await view.current(time.time())
    current, _ = config_in(view.state)
    try:
        config = BalanceConfig.model_validate({**current.model_dump(), **body})
    except ValidationError as e:
        first = e.errors()[0]
        field = loc_to_field(first.get("loc", ())) or next(iter(body), None)
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise invalid(msg if msg.startswith(f"{field}:") else f"{field}: {msg}", field) \
            from None
    await put_config(store, config)
    return config


async def _switch(store: StoreDep, view: ViewDep, enabled: bool) -> BalanceConfig:
    await view.current(time.time())
    config, problems = config_in(view.state)
    if problems:
        raise ApiError(409, "unreadable_record",
                       f"the balancer's settings do not decode ({problems[0].what}): "
                       "write them again with PUT /balance/config")
    config = config.model_copy(update={"enabled": enabled})
    await put_config(store, config)
    return config


@router.post("/enable", response_model=BalanceConfig)
async def enable(store: StoreDep, view: ViewDep) -> BalanceConfig:
    """Automatic mode: the manager runs a round every interval_s."""
    return await _switch(store, view, True)


@router.post("/disable", response_model=BalanceConfig)
async def disable(store: StoreDep, view: ViewDep) -> BalanceConfig:
    return await _switch(store, view, False)


async def _plan(view: ViewDep) -> tuple[PlanAnswer, list[Any]]:
    snap, ha = await read_all_from(view, time.time())
    config, _ = config_in(view.state)
    rnd = decide_balance(snap, ha, config)
    answer = PlanAnswer(imbalance=round(rnd.plan.imbalance, 6),
                        moves=[move_record(m) for m in rnd.plan.moves],
                        notes=list(rnd.plan.notes), held=dict(sorted(rnd.plan.held.items())))
    return answer, list(rnd.queued)


@router.get("/plan", response_model=PlanAnswer)
async def plan(view: ViewDep) -> PlanAnswer:
    """What a round would do now, with every VM it holds and why: nothing is queued."""
    return (await _plan(view))[0]


@router.post("/apply", response_model=PlanAnswer)
async def apply(store: StoreDep, view: ViewDep, body: ApplyRequest | None = None
                ) -> PlanAnswer:
    """Plan now and queue the moves (a dry run queues nothing), whether or not automatic
    mode is on. A move whose task exists already (the manager queued it) is not queued
    twice."""
    answer, queued = await _plan(view)
    if body is not None and body.dry_run:
        return answer
    tasks: dict[int, str] = {}
    for action in queued:
        task = action.task
        task = task.model_copy(update={"params": {**task.params,
                                                  "reason": task.params["reason"]
                                                  + " (applied by an operator)"}})
        if await store.create_task(task) and task.vmid is not None:
            tasks[task.vmid] = task.id
    answer.moves = [m.model_copy(update={"task": tasks.get(m.vmid)}) for m in answer.moves]
    answer.applied = True
    return answer



