"""`corral cluster leave` refuses before it reads or changes anything: on a machine with no
host config, and without a terminal to confirm on unless --yes says so."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from corral.cli.cluster import app
from corral.host import config as host_config
from corral.host.config import HostConfig

runner = CliRunner()


def test_a_machine_without_a_host_config_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["leave", "--yes"],
                           env={"CORRAL_HOST_CONFIG": str(tmp_path / "host.json")})
    assert result.exit_code == 2
    assert "no host config" in result.output


def test_without_a_terminal_it_needs_yes_and_changes_nothing(tmp_path: Path) -> None:
    config = HostConfig.for_lab(tmp_path, "h1", cluster="prod", address="127.0.0.1",
                                etcd_client_port=12379, etcd_peer_port=12380,
                                agent_port=18471, api_port=18470, images_dir=tmp_path,
                                watchdog_timeout=0)
    path = host_config.save(config)
    before = path.read_bytes()
    result = runner.invoke(app, ["leave", "--host-config", str(path)])
    assert result.exit_code == 2
    assert "no terminal to confirm on" in result.output and "--yes" in result.output
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["host.json"]
