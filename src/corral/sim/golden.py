"""Golden logs: each scenario NAME.scn has NAME.log beside it, the whole log of its run.
A change of behaviour shows as a diff against it; `corral sim run --update-golden` rewrites
it on purpose (and the change is reviewed in the commit)."""

from __future__ import annotations

import difflib
from pathlib import Path

from corral.sim.runner import Result


def golden_path(scenario: Path) -> Path:
    return scenario.with_suffix(".log")


def render(result: Result) -> str:
    return "".join(f"{line}\n" for line in result.log)


def compare(scenario: Path, result: Result) -> str | None:
    """None when the run's log is the golden one, else a unified diff (golden first) with
    the command that accepts the new log."""
    path = golden_path(scenario)
    got = render(result)
    if not path.is_file():
        return (f"{path} does not exist; write it with "
                f"`corral sim run --update-golden {scenario}` and review it")
    want = path.read_text()
    if want == got:
        return None
    diff = "".join(difflib.unified_diff(want.splitlines(keepends=True),
                                        got.splitlines(keepends=True),
                                        fromfile=f"{path} (golden)", tofile="this run"))
    return (f"the log of {scenario.name} differs from {path.name}:\n{diff}"
            f"if the change is intended: `corral sim run --update-golden {scenario}`")


def update(scenario: Path, result: Result) -> bool:
    """Writes the golden log; True when it changed."""
    path = golden_path(scenario)
    got = render(result)
    if path.is_file() and path.read_text() == got:
        return False
    path.write_text(got)
    return True
