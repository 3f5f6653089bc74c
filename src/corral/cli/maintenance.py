"""`corral node maintenance ...`: take a host out of service and bring it back."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from corral.cli.client import Api, connect, fail
from corral.cli.options import JsonOpt
from corral.cli.output import err, print_json, table

app = typer.Typer(help="Maintenance mode: move every VM off a host, and back.",
                  no_args_is_help=True)

NodeArg = Annotated[str, typer.Argument(help="Host name.")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until the VMs have moved.")]
TimeoutOpt = Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")]
POLL_SECONDS = 1.0


def _busy(s: dict[str, Any]) -> bool:
    """Still moving VMs (stuck ones wait for the operator, not for time)."""
    return bool(s["to_move"] or s["moving"])


def _stuck_lines(s: dict[str, Any]) -> list[str]:
    return [f"VM {vmid}: {why}" for vmid, why in sorted(s["stuck"].items())]


def _follow(api: Api, node: str, timeout: float) -> dict[str, Any]:
    """Poll the host's status with a progress bar until no VM is left to move."""
    deadline = time.monotonic() + timeout
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:.0f}/{task.total:.0f}"), TimeElapsedColumn(),
                  console=err(), transient=True) as progress:
        bar = progress.add_task(node, total=1)
        while True:
            s: dict[str, Any] = api.get(f"/nodes/{node}/maintenance")
            left = len(s["to_move"]) + len(s["moving"])
            done = len(s["away"]) if s["enabled"] else 0
            progress.update(bar, description=f"{node}: {s['state']} ({len(s['moving'])} moving)",
                            total=max(left + done + len(s["stuck"]), 1), completed=done)
            if not _busy(s):
                return s
            if time.monotonic() > deadline:
                fail(f"{node} still {s['state']} after {timeout:g}s: {left} VM(s) left")
            time.sleep(POLL_SECONDS)


def _report(s: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(s)
        return
    typer.echo(f"{s['node']}: {s['state']} — {len(s['away'])} away, {len(s['moving'])} moving, "
               f"{len(s['to_move'])} to move, {len(s['stuck'])} stuck")
    for line in _stuck_lines(s):
        typer.echo(f"  stuck: {line}")
    if s["staying"]:
        typer.echo(f"  staying (maintenance: stay): {', '.join(map(str, s['staying']))}")
    if s["stopped"]:
        typer.echo(f"  stopped (maintenance: stop): {', '.join(map(str, s['stopped']))}")


def _change(node: str, body: dict[str, Any], wait: bool, timeout: float, as_json: bool) -> None:
    api = connect()
    s: dict[str, Any] = api.post(f"/nodes/{node}/maintenance", body)
    if wait:
        s = _follow(api, node, timeout)
    _report(s, as_json)
    if wait and s["stuck"]:
        fail(f"{len(s['stuck'])} VM(s) of {node} cannot move: see above")


@app.command()
def enable(
    node: NodeArg,
    wait: WaitOpt = False,
    parallel: Annotated[int | None, typer.Option(help="Migrations at once (default 2).")] = None,
    timeout: TimeoutOpt = 3600,
    as_json: JsonOpt = False,
) -> None:
    """Put a host in maintenance: it takes no new VMs and every VM moves off it."""
    _change(node, {"enable": True, "parallel": parallel}, wait, timeout, as_json)


@app.command()
def disable(
    node: NodeArg,
    wait: WaitOpt = False,
    no_return: Annotated[bool, typer.Option(
        "--no-return", help="Leave the VMs where they are instead of moving them back.")] = False,
    timeout: TimeoutOpt = 3600,
    as_json: JsonOpt = False,
) -> None:
    """End maintenance: the VMs that came from this host move back (live)."""
    _change(node, {"enable": False, "no_return": no_return}, wait, timeout, as_json)


@app.command()
def status(
    node: Annotated[str | None, typer.Argument(help="Only this host.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Maintenance state of the hosts, with what is left and what is stuck (and why)."""
    api = connect()
    found: list[dict[str, Any]] = (
        [api.get(f"/nodes/{node}/maintenance")] if node else api.get("/maintenance"))
    if as_json:
        print_json(found if node is None else found[0])
        return
    table(["NODE", "STATE", "AWAY", "MOVING", "TO MOVE", "STUCK", "STAYING", "STOPPED"],
          [[s["node"], s["state"], len(s["away"]), len(s["moving"]), len(s["to_move"]),
            len(s["stuck"]), len(s["staying"]), len(s["stopped"])] for s in found])
    for s in found:
        for line in _stuck_lines(s):
            typer.echo(f"{s['node']}: stuck {line}")
