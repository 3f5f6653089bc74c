"""`corral node ...`: hosts."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from corral.cli import bulk, maintenance, usage
from corral.cli.client import connect
from corral.cli.options import JsonOpt
from corral.cli.output import ago, fields, mem, print_json, table

app = typer.Typer(help="Hosts of the cluster.", no_args_is_help=True)
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(bulk.app, name="bulk")


def _cpu(n: dict[str, Any]) -> str:
    usage = n.get("usage")
    return f"{usage['cpu'] * 100:.0f}%" if usage else "-"


def _mem_used(n: dict[str, Any]) -> str:
    usage = n.get("usage")
    return f"{mem(usage['memory_used_mb'])}/{mem(n['memory_mb'])}" if usage else mem(n["memory_mb"])


@app.command("list")
def list_nodes(as_json: JsonOpt = False) -> None:
    """List hosts."""
    nodes: list[dict[str, Any]] = connect().get_list("/nodes")
    if as_json:
        print_json(nodes)
        return
    table(
        ["NODE", "ONLINE", "CPUS", "CPU", "MEMORY", "ACCEL", "VMS", "RUNNING", "ADDRESS"],
        [
            [n["name"], n["online"], n["cpus"], _cpu(n), _mem_used(n), n["accel"], n["vms"],
             n["vms_running"], n["address"]]
            for n in nodes
        ],
    )


@app.command()
def show(node: Annotated[str, typer.Argument(help="Host name.")], as_json: JsonOpt = False) -> None:
    """Show one host."""
    n: dict[str, Any] = connect().get(f"/nodes/{node}")
    if as_json:
        print_json(n)
        return
    versions = ", ".join(f"{k} {v}" for k, v in sorted(n["versions"].items())) or None
    fields([
        ("node", n["name"]), ("online", n["online"]), ("maintenance", n["maintenance"]),
        ("cpus", n["cpus"]), ("cpu", _cpu(n)), ("memory", _mem_used(n)), ("accel", n["accel"]),
        ("address", n["address"]), ("agent", n["agent_url"] or None),
        ("vms", f"{n['vms']} ({n['vms_running']} running)"), ("started", ago(n["started_at"])),
        ("versions", versions),
    ])


@app.command("usage")
def node_usage(node: Annotated[str, typer.Argument(help="Host name.")],
               range_: usage.RangeOpt = usage.Range.hour, as_json: JsonOpt = False) -> None:
    """A host's usage history: latest, average and maximum of each metric over the range."""
    usage.show(f"/nodes/{node}/usage", range_, as_json)
