"""`corral task ...`: the long actions agents run."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from corral.cli.client import connect
from corral.cli.options import JsonOpt
from corral.cli.output import ago, fields, print_json, table
from corral.cli.waiting import wait_task

app = typer.Typer(help="Tasks (long actions run by host agents).", no_args_is_help=True)

TaskArg = Annotated[str, typer.Argument(help="Task id.")]


@app.command("list")
def list_tasks(
    vmid: Annotated[int | None, typer.Option(help="Only tasks of this VM.")] = None,
    node: Annotated[str | None, typer.Option(help="Only tasks of this host.")] = None,
    state: Annotated[str | None, typer.Option(
        help="Only tasks in this state (queued, running, ok, error).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List tasks, newest first."""
    tasks: list[dict[str, Any]] = connect().get("/tasks", vmid=vmid, node=node, state=state,
                                                limit=limit)
    if as_json:
        print_json(tasks)
        return
    table(
        ["ID", "KIND", "VMID", "NODE", "STATE", "PROGRESS", "CREATED", "ERROR"],
        [
            [t["id"], t["kind"], t["vmid"], t["node"], t["state"],
             f"{t['progress'] * 100:.0f}%", ago(t["created_at"]), t["error"]]
            for t in tasks
        ],
    )


def _show(t: dict[str, Any]) -> None:
    fields([
        ("id", t["id"]), ("kind", t["kind"]), ("vmid", t["vmid"]), ("node", t["node"]),
        ("state", t["state"]), ("progress", f"{t['progress'] * 100:.0f}%"),
        ("params", t["params"] or None), ("created", ago(t["created_at"])),
        ("result", t["result"] or None), ("error", t["error"]),
    ])
    for line in t["log"]:
        typer.echo(f"  {line}")


@app.command()
def show(task_id: TaskArg, as_json: JsonOpt = False) -> None:
    """Show one task and its log."""
    t: dict[str, Any] = connect().get(f"/tasks/{task_id}")
    if as_json:
        print_json(t)
    else:
        _show(t)


@app.command()
def wait(
    task_id: TaskArg,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds (0: never).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a task to finish; exit 1 if it failed."""
    t = wait_task(connect(), task_id, timeout or None)
    if as_json:
        print_json(t)
    else:
        typer.echo(f"task {t['id']} ({t['kind']}): {t['state']}")
