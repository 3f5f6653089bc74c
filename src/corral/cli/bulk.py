"""`corral node bulk ...`: one action on many VMs of a host, run by the manager."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from corral.cli.client import Api, connect, fail
from corral.cli.options import JsonOpt, NoWaitOpt
from corral.cli.output import err, print_json

app = typer.Typer(help="Bulk actions on the VMs of a host.", no_args_is_help=True)

NodeArg = Annotated[str, typer.Argument(help="Host name.")]
ParallelOpt = Annotated[int, typer.Option(help="VMs handled at once.")]
VmsOpt = Annotated[str | None, typer.Option(help="Only these VMs, e.g. 101,102.")]
POLL_SECONDS = 0.5


def _vms(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        fail(f"--vms: expected VM ids separated by commas, got {value!r}")


def _follow(api: Api, task_id: str) -> dict[str, Any]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  TextColumn("[dim]{task.fields[line]}"), console=err(),
                  transient=True) as progress:
        bar = progress.add_task(task_id, total=1.0, line="")
        while True:
            t: dict[str, Any] = api.get(f"/tasks/{task_id}")
            line = t["log"][-1] if t.get("log") else ""
            progress.update(bar, description=f"{t['params']['action']} on {t['node']}",
                            completed=float(t["progress"]), line=line.replace("[", r"\[")[:70])
            if t["state"] in ("ok", "error"):
                return t
            time.sleep(POLL_SECONDS)


def _summary(t: dict[str, Any]) -> None:
    r = t["result"]
    cancelled = r.get("cancelled", {})
    typer.echo(f"{t['params']['action']} on {t['node']}: {len(r.get('succeeded', []))} ok, "
               f"{len(r.get('failed', {}))} failed, {len(r.get('skipped', {}))} skipped"
               + (f", {len(cancelled)} cancelled" if cancelled else ""))
    for vmid in r.get("succeeded", []):
        typer.echo(f"  ok       VM {vmid}")
    for vmid, why in r.get("failed", {}).items():
        typer.echo(f"  failed   VM {vmid}: {why}")
    for vmid, why in r.get("skipped", {}).items():
        typer.echo(f"  skipped  VM {vmid}: {why}")
    for vmid, why in cancelled.items():
        typer.echo(f"  cancelled VM {vmid}: {why}")


def _run(node: str, body: dict[str, Any], no_wait: bool, as_json: bool) -> None:
    api = connect()
    task_id = str(api.post(f"/nodes/{node}/bulk", body)["task"])
    if no_wait:
        print_json({"task": task_id}) if as_json else typer.echo(task_id)
        return
    t = _follow(api, task_id)
    print_json(t) if as_json else _summary(t)
    if t["state"] == "error":
        raise typer.Exit(1)


@app.command()
def migrate(
    node: NodeArg,
    target: Annotated[str, typer.Option(help="Host the VMs move to.")],
    parallel: ParallelOpt = 4,
    vms: VmsOpt = None,
    with_local_disks: Annotated[bool, typer.Option(
        "--with-local-disks", help="Copy disks on host-local storage along.")] = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Migrate the VMs of a host (live when running, cold when stopped)."""
    _run(node, {"action": "migrate", "target": target, "parallel": parallel, "vms": _vms(vms),
                "with_local_disks": with_local_disks}, no_wait, as_json)


@app.command()
def suspend(node: NodeArg, parallel: ParallelOpt = 4, vms: VmsOpt = None,
            no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Pause the running VMs of a host."""
    _run(node, {"action": "suspend", "parallel": parallel, "vms": _vms(vms)}, no_wait, as_json)


@app.command()
def shutdown(
    node: NodeArg,
    parallel: ParallelOpt = 4,
    vms: VmsOpt = None,
    timeout: Annotated[float, typer.Option(help="Hard stop after this many seconds.")] = 180,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Shut the VMs of a host down (reverse start order)."""
    _run(node, {"action": "shutdown", "parallel": parallel, "vms": _vms(vms),
                "timeout": timeout}, no_wait, as_json)


@app.command()
def start(node: NodeArg, parallel: ParallelOpt = 4, vms: VmsOpt = None,
          no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Start the VMs of a host (`startup` order, low first)."""
    _run(node, {"action": "start", "parallel": parallel, "vms": _vms(vms)}, no_wait, as_json)


@app.command()
def cancel(
    task: Annotated[str, typer.Argument(help="The bulk task's id.")],
    vms: VmsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a bulk job, or only some of its VMs: VMs not begun are left alone; a VM under
    way (a migration, say) runs to its end or rolls back."""
    body: dict[str, Any] = {} if vms is None else {"vms": _vms(vms)}
    answer: dict[str, Any] = connect().post(f"/tasks/{task}/cancel", body)
    if as_json:
        print_json(answer)
        return
    typer.echo(f"cancelled: {', '.join(map(str, answer['cancelled'])) or 'none'}")
    for vmid, why in answer["begun"].items():
        typer.echo(f"  under way VM {vmid}: {why}")
    for vmid, why in answer["finished"].items():
        typer.echo(f"  ended     VM {vmid}: {why}")
