"""Following a task to its end with a live display."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from corral.cli.client import Api, fail
from corral.cli.output import err

POLL_SECONDS = 0.1


def _describe(task: dict[str, Any]) -> str:
    what = f"{task['kind']} VM {task['vmid']}" if task.get("vmid") else task["kind"]
    return f"{what} on {task['node']} ({task['state']})"


def wait_task(api: Api, task_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Poll until the task finishes; returns its record, or exits 1 on error or timeout."""
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[line]}"),
        console=err(),
        transient=True,
    ) as progress:
        bar = progress.add_task(task_id, total=1.0, line="")
        while True:
            task: dict[str, Any] = api.get(f"/tasks/{task_id}")
            line = task["log"][-1] if task.get("log") else ""
            progress.update(
                bar,
                description=_describe(task),
                completed=float(task.get("progress") or 0.0),
                line=line.replace("[", r"\[")[:80],
            )
            if task["state"] in ("ok", "error"):
                break
            if deadline is not None and time.monotonic() > deadline:
                fail(f"task {task_id} ({task['kind']}) still {task['state']} after {timeout}s")
            time.sleep(POLL_SECONDS)
    if task["state"] == "error":
        fail(f"task {task_id} ({task['kind']}) failed: {task.get('error') or 'unknown error'}")
    return task
