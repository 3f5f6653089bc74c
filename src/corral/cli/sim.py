"""`corral sim run FILE...`: run scenarios in the simulator and print their logs, or check
or rewrite their golden logs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.cli.client import fail

app = typer.Typer(help="The HA simulator (virtual clock, real manager code).",
                  no_args_is_help=True)


@app.command("run")
def run_files(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files (.scn).")],
    update_golden: Annotated[bool, typer.Option(
        "--update-golden", help="Write each scenario's log to NAME.log beside it.")] = False,
    check_golden: Annotated[bool, typer.Option(
        "--check-golden", help="Compare each log with NAME.log; print the diffs.")] = False,
) -> None:
    """Run scenarios; print the log (of a single one, unless the golden logs are checked or
    written). Exit 1 when an expectation, an invariant or a golden log failed."""
    # Imported here: the simulator pulls in the whole manager, which other commands skip.
    from corral.sim import golden
    from corral.sim.runner import run
    from corral.sim.scenario import ScenarioError, load

    bad = 0
    for path in paths:
        try:
            result = run(load(path))
        except (OSError, ScenarioError, ValueError) as e:
            fail(f"{path}: {e}")
        if update_golden:
            changed = golden.update(path, result)
            typer.echo(f"{golden.golden_path(path)}: {'written' if changed else 'unchanged'}")
        elif check_golden:
            diff = golden.compare(path, result)
            if diff is not None:
                bad += 1
                typer.echo(diff, err=True)
        elif len(paths) == 1:
            for line in result.log:
                typer.echo(line)
        for f in result.failures:
            typer.echo(f"FAILED {result.scenario}: {f}", err=True)
        if result.failures:
            bad += 1
        else:
            typer.echo(f"{result.scenario}: ok")
    if bad:
        raise typer.Exit(1)
