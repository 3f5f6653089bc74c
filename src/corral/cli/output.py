"""Printing: JSON for scripts, Rich tables for people."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table


def out() -> Console:
    # Built per call so it follows the current sys.stdout (tests swap it).
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    t = Table(title=title, header_style="bold")
    for i, name in enumerate(columns):
        t.add_column(name, no_wrap=i == 0)  # ids must stay whole to be copied
    for row in rows:
        t.add_row(*(cell(v) for v in row))
    out().print(t)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    for k, v in pairs:
        t.add_row(k, cell(v))
    out().print(t)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("[", r"\[")  # Rich markup must not eat user text


def mem(mb: int | None) -> str:
    if mb is None:
        return "-"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb}M"


def ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    secs = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"
