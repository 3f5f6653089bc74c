"""A lab with a witness: one more machine after the hosts, with its own namespace, address and
ports, handled by the network, the supervisor and the faults, never counted as a host (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.cli.lab import app
from corral.host.commands import ETCD, host_commands
from corral.host.services import SupervisedServices
from corral.lab import cluster_build
from corral.lab.children import read_wanted, wanted_children
from corral.lab.layout import LabLayout
from corral.lab.netns import plan_down, plan_up
from corral.lab.supervisor import Supervisor


def witness_lab(root: Path, netns: bool = True) -> LabLayout:
    return LabLayout(root, nodes=2, base_port=30000, netns=netns, cluster_mode=True,
                     witness=True)


def test_the_witness_is_the_machine_after_the_hosts() -> None:
    lab = witness_lab(Path("/lab"))
    assert lab.node_names == ["n1", "n2"] and lab.machines == 3
    assert lab.machine_names == ["n1", "n2", "w"] and lab.witness_index == 3
    assert lab.machine_index("w") == 3 and lab.machine_index("n2") == 2
    assert lab.node_dir(3) == Path("/lab/nodes/w")
    assert lab.host_config_path(3) == Path("/lab/nodes/w/etc/host.json")
    assert lab.power_marker(3) == Path("/lab/nodes/w/powered-off")
    assert (lab.host_address(3), lab.netns_name(3), lab.veth(3)) == (
        "198.18.234.3", "corral-234-w", "crl234w")
    with pytest.raises(ValueError, match="no agent and no VMs"):
        lab.node_index("w")  # not a host: no agent to freeze, no VMs
    with pytest.raises(ValueError, match="witness: w"):
        lab.machine_index("n3")
    assert LabLayout(Path("/lab"), nodes=2, cluster_mode=True).machine_names == ["n1", "n2"]


def test_a_witness_needs_a_lab_built_as_a_cluster() -> None:
    with pytest.raises(ValueError, match="--cluster"):
        LabLayout(Path("/lab"), witness=True)
    with pytest.raises(ValueError, match="with a witness"):
        LabLayout(Path("/lab"), nodes=99, cluster_mode=True, witness=True)


def test_on_loopback_the_witness_has_its_own_etcd_ports() -> None:
    lab = witness_lab(Path("/lab"), netns=False)
    assert {30003, 30103} <= set(lab.ports)
    assert len(set(lab.ports)) == len(lab.ports)


def test_the_layout_round_trips_the_witness(tmp_path: Path) -> None:
    lab = witness_lab(tmp_path)
    lab.save()
    assert LabLayout.load(tmp_path) == lab


def test_the_network_gives_the_witness_its_namespace() -> None:
    lab = witness_lab(Path("/lab"))
    up = [" ".join(c) for c in plan_up(lab)]
    assert "ip link add crl234w type veth peer name eth0 netns corral-234-w" in up
    assert "ip -n corral-234-w addr add 198.18.234.3/24 dev eth0" in up
    down = [" ".join(c) for c in plan_down(lab)]
    assert "ip netns del corral-234-w" in down and "ip link del crl234w" in down


def test_the_witness_plan_is_a_witness_with_the_next_ports(tmp_path: Path) -> None:
    lab = witness_lab(tmp_path)
    plan = cluster_build.host_plan(lab, 3)
    assert (plan.name, plan.role, plan.member_name) == ("w", "witness", "witness-w")
    assert (plan.address, plan.etcd_client_port, plan.etcd_peer_port) == (
        "198.18.234.3", 30003, 30103)
    assert plan.run_dir == lab.run_dir(3) and plan.etc_dir == lab.etc_dir(3)
    assert plan.tls is not None and plan.tls.ca_key is None


def test_the_supervisor_runs_the_witness_etcd_in_its_namespace(tmp_path: Path) -> None:
    lab = witness_lab(tmp_path)
    plan = cluster_build.host_plan(lab, 3)
    services = SupervisedServices(plan.name, plan.run_dir)
    services.install(host_commands(plan))
    services.start([ETCD])
    (etcd,) = wanted_children(lab, 3, read_wanted(lab.run_dir(3), "w"))
    assert (etcd.name, etcd.host, etcd.role) == ("w-etcd", "w", "etcd")
    assert etcd.argv[:4] == ("ip", "netns", "exec", "corral-234-w")
    # Power: a marker on the witness holds its children down as a host's would.
    lab.node_dir(3).mkdir(parents=True, exist_ok=True)
    lab.power_marker(3).write_text("0\n")
    assert Supervisor(lab, []).powered_off() == {"w"}


def test_lab_up_refuses_a_witness_without_cluster(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["up", "--dir", str(tmp_path / "lab"), "--no-netns",
                                      "--no-cluster", "--witness"])
    assert result.exit_code != 0 and "--cluster" in result.output
    assert not (tmp_path / "lab" / "lab.json").exists()


def test_the_supervisor_imports_the_corral_that_started_it(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """It runs in the lab dir: a relative PYTHONPATH entry is made absolute first."""
    from corral.lab.control import absolute_pythonpath

    monkeypatch.chdir(tmp_path)
    assert absolute_pythonpath({"PYTHONPATH": "src:/opt/x"}) == {
        "PYTHONPATH": f"{tmp_path}/src:/opt/x"}
    assert absolute_pythonpath({}) == {}
