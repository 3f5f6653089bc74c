"""Options shared by many commands."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NoWaitOpt = Annotated[
    bool,
    typer.Option("--no-wait", "--async", help="Print the task id and return without waiting."),
]
