"""`corral node usage` and `corral vm usage`: the usage history the API relays from the host
that keeps it, summed up per metric (latest, average, maximum) or as JSON."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer

from corral.cli.client import connect
from corral.cli.output import print_json, table


class Range(StrEnum):
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"
    year = "year"


RangeOpt = Annotated[Range, typer.Option(
    "--range", help="hour (10 s slots), day (1 min), week (30 min), month (2 h), year (1 day).")]


@dataclass(frozen=True)
class Summary:
    metric: str
    latest: float | None  # the newest slot's average
    average: float | None  # of the slots' averages
    maximum: float | None  # of the slots' maxima
    slots: int  # slots with a figure


def _figures(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def summarise(body: dict[str, Any]) -> list[Summary]:
    out = []
    for metric, series in body["metrics"].items():
        avg, top = _figures(series["avg"]), _figures(series["max"])
        out.append(Summary(metric, avg[-1] if avg else None,
                           sum(avg) / len(avg) if avg else None, max(top) if top else None,
                           len(avg)))
    return out


def _bytes(value: float) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def shown(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "cpu" or metric.startswith("psi_"):
        return f"{value * 100:.1f}%"
    if metric.endswith("_per_s"):
        return f"{_bytes(value)}/s"
    return _bytes(value)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def show(path: str, range_: Range, as_json: bool) -> None:
    body: dict[str, Any] = connect().get(path, range=range_.value)
    if as_json:
        print_json(body)
        return
    rows = summarise(body)
    total = len(next(iter(body["metrics"].values()))["avg"]) if body["metrics"] else 0
    end = body["start"] + total * body["step_seconds"]
    subject = f"VM {body['vmid']} on {body['node']}" if body["vmid"] is not None else (
        f"node {body['node']}")
    table(["METRIC", "LATEST", "AVERAGE", "MAXIMUM", "SLOTS"],
          [[r.metric, shown(r.metric, r.latest), shown(r.metric, r.average),
            shown(r.metric, r.maximum), f"{r.slots}/{total}"] for r in rows],
          title=f"{subject}, {_when(body['start'])} to {_when(end)}, "
                f"{body['step_seconds']} s slots")
