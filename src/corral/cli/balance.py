"""`corral balance ...`: the load balancer's status, plan, apply, on/off and settings."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from corral.cli.client import connect, fail
from corral.cli.options import JsonOpt
from corral.cli.output import print_json, table

app = typer.Typer(help="Load balancing on live usage: status, plan, apply, settings.",
                  no_args_is_help=True)
config_app = typer.Typer(help="The balancer's settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _moves(moves: list[dict[str, Any]], with_task: bool) -> None:
    columns = ["VMID", "FROM", "TO", "COST", "WHY"] + (["TASK"] if with_task else [])
    table(columns, [[m["vmid"], m["source"], m["target"], f"{m['cost_s']:.0f}s", m["reason"]]
                    + ([m.get("task") or "not queued"] if with_task else []) for m in moves])


def _plan(answer: dict[str, Any], verbose: bool, with_task: bool) -> None:
    typer.echo(f"imbalance {answer['imbalance']:.3f}")
    for note in answer["notes"]:
        typer.echo(f"  {note}")
    if answer["moves"]:
        _moves(answer["moves"], with_task)
    if verbose and answer["held"]:
        typer.echo("")
        table(["VMID", "STAYS BECAUSE"], sorted(
            ([int(vmid), why] for vmid, why in answer["held"].items()), key=lambda r: r[0]))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Whether automatic balancing is on, its settings, and what its last round did."""
    o: dict[str, Any] = connect().get("/balance")
    if as_json:
        print_json(o)
        return
    c = o["config"]
    mode = "on" if c["enabled"] else "off"
    typer.echo(f"automatic balancing: {mode} (a round every {c['interval_s']:g}s, at most "
               f"{c['max_moves_per_round']} moves a round, {c['max_concurrent']} at once)")
    if o.get("config_problem"):
        typer.echo(f"the settings do not decode, so it is off: {o['config_problem']}")
    last = o.get("last_round")
    if not last:
        typer.echo("no round yet")
        return
    typer.echo(f"last round: {_ago(last['at'])}, imbalance {last['imbalance']:.3f}")
    for note in last["notes"]:
        typer.echo(f"  {note}")
    if last["moves"]:
        _moves(last["moves"], with_task=True)


def _ago(at: float) -> str:
    return f"{max(0.0, time.time() - at):.0f}s ago"


@app.command()
def plan(
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Also say why every other VM stays.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """What a round would move now, and why; nothing is moved."""
    answer: dict[str, Any] = connect().get("/balance/plan")
    if as_json:
        print_json(answer)
        return
    _plan(answer, verbose, with_task=False)


@app.command()
def apply(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: queue nothing.")]
    = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Plan now and start the moves as migration tasks (automatic mode on or off)."""
    client = connect()
    if not dry_run and not yes:
        preview: dict[str, Any] = client.get("/balance/plan")
        if not preview["moves"]:
            _plan(preview, False, with_task=False)
            return
        _plan(preview, False, with_task=False)
        typer.confirm(f"Start these {len(preview['moves'])} migrations?", abort=True)
    answer: dict[str, Any] = client.post("/balance/apply", {"dry_run": dry_run})
    if as_json:
        print_json(answer)
        return
    _plan(answer, False, with_task=not dry_run)


@app.command()
def enable() -> None:
    """Automatic mode: the manager runs a round every interval."""
    c = connect().post("/balance/enable")
    typer.echo(f"automatic balancing on: a round every {c['interval_s']:g}s")


@app.command()
def disable() -> None:
    """No automatic rounds (migrations already started run to their end)."""
    connect().post("/balance/disable")
    typer.echo("automatic balancing off")


def _value(text: str) -> Any:
    """'0.5' -> 0.5, 'true' -> True, 'abc' -> 'abc': the API checks each setting's type."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """The balancer's settings."""
    c: dict[str, Any] = connect().get("/balance/config")
    if as_json:
        print_json(c)
        return
    table(["SETTING", "VALUE"], [[k, v] for k, v in c.items()])


@config_app.command("set")
def config_set(
    settings: Annotated[list[str], typer.Argument(
        help="NAME=VALUE pairs, e.g. cpu_weight=2 threshold=0.1 (see `config show`).")],
) -> None:
    """Change settings; the others keep their values."""
    body: dict[str, Any] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"'{item}': give NAME=VALUE")
        body[name.strip()] = _value(value.strip())
    c = connect().request("PUT", "/balance/config", json=body)
    typer.echo(", ".join(f"{k}={c[k]}" for k in body))
