"""Golden logs: a changed log fails with a readable diff and the command that accepts it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from corral.cli.main import app
from corral.sim import golden
from corral.sim.runner import run
from corral.sim.scenario import load

SCENARIO = """# A host loses power; its HA VM is recovered.
cluster nodes=3 run=40
vm 100 on n2 ha=started
at 5 power-off n2
expect at 35 vm 100 running on !n2
"""

runner = CliRunner()


def write(tmp_path: Path, text: str = SCENARIO) -> Path:
    path = tmp_path / "lost.scn"
    path.write_text(text)
    return path


def test_update_then_compare_is_clean(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = run(load(path))
    assert golden.compare(path, result) is not None  # no golden log yet
    assert golden.update(path, result) is True
    assert golden.update(path, result) is False
    assert golden.compare(path, run(load(path))) is None
    log = path.with_suffix(".log").read_text().splitlines()
    # Fixed-width times, a source column, the story in order.
    assert log[0].startswith("    0.0  manager      n1 is leader")
    assert any(line.startswith("    5.0  event        power-off n2") for line in log)
    assert log[-1] == "   40.0  sim          end of run, all checks passed"


def test_a_change_of_behaviour_shows_as_a_diff(tmp_path: Path) -> None:
    path = write(tmp_path)
    golden.update(path, run(load(path)))
    path.write_text(SCENARIO.replace("at 5 power-off", "at 7 power-off"))
    diff = golden.compare(path, run(load(path)))
    assert diff is not None
    assert "-    5.0  event        power-off n2" in diff
    assert "+    7.0  event        power-off n2" in diff
    assert f"corral sim run --update-golden {path}" in diff


def test_cli_writes_and_checks_golden_logs(tmp_path: Path) -> None:
    path = write(tmp_path)
    out = runner.invoke(app, ["sim", "run", "--update-golden", str(path)])
    assert out.exit_code == 0 and "written" in out.output
    out = runner.invoke(app, ["sim", "run", "--check-golden", str(path)])
    assert out.exit_code == 0 and "lost: ok" in out.output
    path.write_text(SCENARIO.replace("at 5 power-off", "at 7 power-off"))
    out = runner.invoke(app, ["sim", "run", "--check-golden", str(path)])
    assert out.exit_code == 1 and "+    7.0  event" in out.output


def test_cli_names_the_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO + "at 9 cut-store n7\n")
    out = runner.invoke(app, ["sim", "run", str(path)])
    assert out.exit_code != 0 and "line 6: no host 'n7'" in out.output
