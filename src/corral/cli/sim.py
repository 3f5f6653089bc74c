"""`corral sim run FILE`: run a scenario in the simulator and print its log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.cli.client import fail

app = typer.Typer(help="The HA simulator (virtual clock, real manager code).",
                  no_args_is_help=True)


@app.command("run")
def run_file(path: Annotated[Path, typer.Argument(help="A scenario file (.scn).")]) -> None:
    """Run a scenario, print its log; exit 1 when an expectation or invariant failed."""
    # Imported here: the simulator pulls in the whole manager, which other commands skip.
    from corral.sim.runner import run
    from corral.sim.scenario import ScenarioError, load

    try:
        result = run(load(path))
    except (OSError, ScenarioError, ValueError) as e:
        fail(f"{path}: {e}")
    for line in result.log:
        typer.echo(line)
    if result.failures:
        for f in result.failures:
            typer.echo(f"FAILED {f}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{result.scenario}: ok")
