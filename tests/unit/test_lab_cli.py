"""`corral lab` on labs that are absent or stopped: nothing is started by these tests."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from typer.testing import CliRunner

from corral.cli.lab import app
from corral.lab.layout import LabLayout

runner = CliRunner()


def stopped_lab(tmp_path: Path, **kwargs: int) -> LabLayout:
    lab = LabLayout(tmp_path / "lab", **kwargs)  # type: ignore[arg-type]
    lab.save()
    return lab


def test_down_and_status_without_a_lab(tmp_path: Path) -> None:
    result = runner.invoke(app, ["down", "--dir", str(tmp_path)])
    assert result.exit_code == 0 and "nothing to stop" in result.output
    result = runner.invoke(app, ["status", "--dir", str(tmp_path), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"dir": str(tmp_path), "running": False,
                                         "exists": False}


def test_down_on_a_stopped_lab_is_a_no_op(tmp_path: Path) -> None:
    lab = stopped_lab(tmp_path)
    result = runner.invoke(app, ["down", "--dir", str(lab.root)])
    assert result.exit_code == 0 and "not running" in result.output
    result = runner.invoke(app, ["status", "--dir", str(lab.root), "--json"])
    data = json.loads(result.output)
    assert (data["running"], data["processes"], data["url"]) == (False, [], lab.api_url)


def test_destroy_deletes_only_a_lab_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["destroy", "--dir", str(tmp_path), "--yes"])
    assert result.exit_code == 1 and tmp_path.exists()
    lab = stopped_lab(tmp_path)
    assert runner.invoke(app, ["destroy", "--dir", str(lab.root)], input="n\n").exit_code == 1
    assert lab.root.exists()
    assert runner.invoke(app, ["destroy", "--dir", str(lab.root), "--yes"]).exit_code == 0
    assert not lab.root.exists()


def test_up_refuses_to_change_the_shape_of_an_existing_cluster(tmp_path: Path) -> None:
    lab = stopped_lab(tmp_path, nodes=3)
    (lab.etcd_member(1).data_dir / "member").mkdir(parents=True)
    result = runner.invoke(app, ["up", "--dir", str(lab.root), "--nodes", "4"])
    assert result.exit_code == 1 and "destroy" in result.output


def test_up_refuses_busy_ports(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        lab = stopped_lab(tmp_path, api_port=port, base_port=port + 1000 if port < 60000 else 2000)
        result = runner.invoke(app, ["up", "--dir", str(lab.root)])
    assert result.exit_code == 1 and f"ports in use: {port}" in result.output
