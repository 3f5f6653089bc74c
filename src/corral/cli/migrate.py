"""`corral vm migrate`: move a VM to another host, with a live progress bar of bytes moved."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from corral.cli.client import Api, connect, fail
from corral.cli.options import JsonOpt, NoWaitOpt
from corral.cli.output import err, print_json

POLL_SECONDS = 0.3
MIB = 1024 * 1024


def _size(n: float) -> str:
    return f"{n / MIB:.1f} MiB" if n < 1024 * MIB else f"{n / MIB / 1024:.2f} GiB"


def _figures(rec: dict[str, Any] | None) -> str:
    if not rec:
        return ""
    s = rec["stats"]
    total = s["ram_total"] + s["disk_total"]
    moved = s["ram_transferred"] + s["disk_transferred"]
    if not total:
        return str(rec["phase"])
    return (f"{rec['phase']}: {_size(moved)} sent of {_size(total)}, "
            f"{_size(s['ram_remaining'])} RAM left, {_size(s['rate'])}/s")


def follow(api: Api, vmid: int, task_id: str) -> dict[str, Any]:
    """Poll the task and the migration record until the task ends; return the task."""
    # Here, not at the top: every `corral vm` command loads this module.
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[line]}"), console=err(), transient=True,
    ) as bar:
        row = bar.add_task(f"VM {vmid}", total=1.0, line="")
        while True:
            task: dict[str, Any] = api.get(f"/tasks/{task_id}")
            reply = api.http.get(f"/vms/{vmid}/migration")  # gone once the move ended
            rec = reply.json() if reply.status_code == 200 else None
            line = _figures(rec) or (task["log"][-1] if task.get("log") else task["state"])
            bar.update(row, completed=float(task.get("progress") or 0.0),
                       line=line.replace("[", r"\[")[:90])
            if task["state"] in ("ok", "error"):
                return task
            time.sleep(POLL_SECONDS)


def summary(vmid: int, r: dict[str, Any]) -> str:
    text = f"VM {vmid} migrated to {r['target']} ({r['mode']}) in {r['total_time_s']:.1f}s"
    if r["mode"] == "live":
        text += (f", downtime {r.get('downtime_ms', 0)} ms"
                 f" (+{r.get('switchover_ms', 0)} ms switchover)")
    return text + f", {_size(r.get('bytes', 0))} moved"


def migrate(
    vmid: Annotated[int, typer.Argument(help="VM id.")],
    target: Annotated[str, typer.Argument(help="Host to move the VM to.")],
    with_local_disks: Annotated[bool, typer.Option(
        "--with-local-disks", help="Copy disks on local storage to the target.")] = False,
    bwlimit: Annotated[str | None, typer.Option(
        help="Bandwidth limit, e.g. 200M (MiB/s); default: none.")] = None,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move a VM to another host: live when it runs, cold when it is stopped."""
    api = connect()
    body = {"target": target, "with_local_disks": with_local_disks, "bwlimit": bwlimit}
    reply: dict[str, Any] = api.post(f"/vms/{vmid}/migrate", body)
    if no_wait:
        if as_json:
            print_json(reply)
        else:
            typer.echo(f"task {reply['task']} queued")
        return
    task = follow(api, vmid, reply["task"])
    if as_json:
        print_json(reply | {"state": task["state"], "error": task["error"],
                            "result": task["result"]})
        if task["state"] == "error":
            raise typer.Exit(1)
        return
    if task["state"] == "error":
        fail(f"migration of VM {vmid} failed: {task.get('error') or 'unknown error'}")
    typer.echo(summary(vmid, task["result"]))
