"""Cluster mode of the lab supervisor, its pure side: a host's control file read into children,
and the stops and starts that bring the running children to the wanted ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.host.commands import AGENT, API, ETCD, WATCHDOG, host_commands
from corral.host.config import HostConfig
from corral.host.services import ServicesError, SupervisedServices
from corral.lab.children import ChildSpec, changes, read_wanted, wanted_children
from corral.lab.layout import LabLayout
from corral.lab.supervisor import plan_children


def spec(name: str, *argv: str) -> ChildSpec:
    return ChildSpec(name, argv or (name,), Path(f"/lab/logs/{name}.log"), host="n1")


ETCD_1, DOG_1, AGENT_1 = spec("n1-etcd"), spec("n1-watchdog"), spec("n1-agent")


def test_a_fresh_host_starts_everything_wanted_in_order() -> None:
    plan = changes([], [ETCD_1, DOG_1, AGENT_1])
    assert plan.stop == ()
    assert [s.name for s in plan.start] == ["n1-etcd", "n1-watchdog", "n1-agent"]


def test_nothing_to_do_when_the_wanted_ones_run() -> None:
    plan = changes([ETCD_1, DOG_1], [ETCD_1, DOG_1])
    assert not plan
    assert (plan.stop, plan.start) == ((), ())


def test_the_unwanted_stop_in_reverse_start_order() -> None:
    plan = changes([ETCD_1, DOG_1, AGENT_1], [DOG_1])
    assert plan.stop == ("n1-agent", "n1-etcd")
    assert plan.start == ()
    assert changes([ETCD_1, DOG_1, AGENT_1], []).stop == ("n1-agent", "n1-watchdog", "n1-etcd")


def test_a_changed_command_line_restarts_that_child_only() -> None:
    forced = spec("n1-etcd", "n1-etcd", "--force-new-cluster")
    plan = changes([ETCD_1, DOG_1, AGENT_1], [forced, DOG_1, AGENT_1])
    assert plan.stop == ("n1-etcd",)
    assert plan.start == (forced,)


def test_a_new_service_starts_beside_the_running_ones() -> None:
    plan = changes([ETCD_1], [ETCD_1, DOG_1, AGENT_1])
    assert plan.stop == ()
    assert [s.name for s in plan.start] == ["n1-watchdog", "n1-agent"]


def lab_host(root: Path, address: str = "127.0.0.1", **fields: Any) -> HostConfig:
    return HostConfig.for_lab(root, "n2", cluster="lab", address=address,
                              etcd_client_port=30002, etcd_peer_port=30102, agent_port=30202,
                              api_port=30302, images_dir=Path("/img"), python="/py", **fields)


def test_the_supervisor_runs_exactly_the_command_lines_corral_installed(tmp_path: Path) -> None:
    """What `cluster create/join` install through SupervisedServices comes back as children
    with the same argv and environment, the wanted ones only, named and placed as the lab's
    own plan names and places them."""
    layout = LabLayout(tmp_path, nodes=2, base_port=30000, cluster_mode=True)
    config = lab_host(tmp_path, tls=False)
    assert config.run_dir == layout.run_dir(2)
    services = SupervisedServices(config.name, config.run_dir)
    commands = host_commands(config, "aarch64")  # etcd gets an environment there
    services.install(commands)
    services.start([ETCD, WATCHDOG, AGENT])
    assert layout.control_file(2).exists()

    children = wanted_children(layout, 2, read_wanted(layout.run_dir(2), "n2"))
    assert [c.name for c in children] == ["n2-etcd", "n2-watchdog", "n2-agent"]
    assert [c.role for c in children] == ["etcd", "watchdog", "agent"]
    assert [c.service for c in children] == [ETCD, WATCHDOG, AGENT]
    assert all(c.host == "n2" and c.restart for c in children)
    by_name = {c.name: c for c in commands}
    for child in children:
        assert child.service is not None
        assert child.argv == by_name[child.service].argv
        assert child.env == {"CORRAL_LAB": str(tmp_path), **by_name[child.service].env}
        assert child.log == tmp_path / "logs" / f"{child.name}.log"
    assert children[0].env["ETCD_UNSUPPORTED_ARCH"] == "arm64"

    services.start([API])
    api = wanted_children(layout, 2, read_wanted(layout.run_dir(2), "n2"))[-1]
    assert (api.name, api.role) == ("n2-api", "api")


def test_in_netns_mode_a_host_service_runs_in_its_namespace(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path, nodes=2, base_port=30000, netns=True, cluster_mode=True)
    services = SupervisedServices("n2", layout.run_dir(2))
    services.install(host_commands(lab_host(tmp_path, address=layout.host_address(2))))
    services.start([ETCD])
    (etcd,) = wanted_children(layout, 2, read_wanted(layout.run_dir(2), "n2"))
    assert etcd.argv[:4] == ("ip", "netns", "exec", "corral-234-n2")
    assert etcd.argv[4:7] == ("/py", "-m", "corral.host.etcd_launch")
    assert etcd.argv[7].endswith("etcd")


def test_no_control_file_wants_nothing(tmp_path: Path) -> None:
    layout = LabLayout(tmp_path, nodes=1, cluster_mode=True)
    assert read_wanted(layout.run_dir(1), "n1") is None
    assert wanted_children(layout, 1, None) == []


def write_control(run: Path, data: dict[str, Any] | str) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = run / "services.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(("data", "field"), [
    ({"version": 1, "host": "n1",
      "services": [{"name": "corral-etcd", "argv": [], "wanted": True}]},
     "services.0.argv"),
    ({"version": 1, "host": "n1",
      "services": [{"name": "corral-dns", "argv": ["/bin/true"], "wanted": True}]},
     "services.0.name"),
    ({"version": 2, "host": "n1", "services": []}, "version"),
    ({"version": 1, "services": []}, "host"),
    ("{not json", "not JSON"),
])
def test_a_control_file_that_does_not_read_is_named_with_its_field(
        tmp_path: Path, data: dict[str, Any] | str, field: str) -> None:
    path = write_control(tmp_path / "run", data)
    with pytest.raises(ServicesError) as e:
        read_wanted(tmp_path / "run", "n1")
    assert str(e.value).startswith(f"{path}: {field}")


def test_a_control_file_of_another_host_is_refused(tmp_path: Path) -> None:
    path = write_control(tmp_path / "run", {"version": 1, "host": "n3", "services": []})
    with pytest.raises(ServicesError, match=f"^{path}: host: 'n3' is not the lab host"):
        read_wanted(tmp_path / "run", "n1")


def test_a_service_listed_twice_is_refused(tmp_path: Path) -> None:
    etcd = {"name": "corral-etcd", "argv": ["/usr/bin/etcd"], "wanted": True}
    path = write_control(tmp_path / "run", {"version": 1, "host": "n1",
                                            "services": [etcd, etcd]})
    with pytest.raises(ServicesError, match=f"^{path}: services: listed more than once: "
                                            "corral-etcd$"):
        read_wanted(tmp_path / "run", "n1")


def test_in_cluster_mode_the_supervisors_own_plan_is_the_extra_children_only() -> None:
    layout = LabLayout(Path("/lab"), nodes=2, cluster_mode=True)
    plan = plan_children(layout, python="/py", extra=[("dummy", ["sleep", "1000"])])
    assert [(c.name, c.role, c.host) for c in plan] == [("dummy", "other", None)]
    assert plan[0].argv == ("sleep", "1000")
