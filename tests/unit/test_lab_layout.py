"""Lab layout: paths, ports and persistence (pure, no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.lab.layout import LabLayout


def test_ports_follow_the_documented_blocks() -> None:
    lab = LabLayout(Path("/lab"))
    n1 = lab.etcd_member(1)
    assert (n1.name, n1.client_port, n1.peer_port) == ("n1", 23801, 23901)
    assert lab.agent_port(1) == 24001
    assert lab.api_url == "http://127.0.0.1:8470"
    assert lab.node_names == ["n1", "n2", "n3"]
    assert len(set(lab.ports)) == len(lab.ports) == 1 + 3 * 3


def test_paths_live_under_the_lab_dir() -> None:
    lab = LabLayout(Path("/lab"), nodes=2)
    assert lab.node_dir(2) == Path("/lab/nodes/n2")
    assert lab.etcd_member(2).data_dir == Path("/lab/nodes/n2/etcd")
    assert lab.run_dir(1) == Path("/lab/nodes/n1/run")
    assert lab.log_path("n1-agent") == Path("/lab/logs/n1-agent.log")
    assert lab.shared_dir == Path("/lab/shared")
    assert lab.token_path == Path("/lab/token")


def test_each_host_keeps_its_config_and_control_files_where_its_host_config_says() -> None:
    lab = LabLayout(Path("/lab"), nodes=2)
    assert lab.etc_dir(2) == Path("/lab/nodes/n2/etc")
    assert lab.host_config_path(2) == Path("/lab/nodes/n2/etc/host.json")
    assert lab.control_file(1) == Path("/lab/nodes/n1/run/services.json")
    assert lab.services_status_file(1) == Path("/lab/nodes/n1/run/services-status.json")


def test_each_host_lists_its_own_etcd_member_first() -> None:
    lab = LabLayout(Path("/lab"), base_port=30000)
    assert lab.etcd_urls_for(2) == [
        "http://127.0.0.1:30002", "http://127.0.0.1:30001", "http://127.0.0.1:30003",
    ]
    assert sorted(lab.etcd_urls_for(3)) == sorted(lab.client_urls)


@pytest.mark.parametrize(
    "kwargs",
    [{"nodes": 0}, {"nodes": 100}, {"base_port": 80}, {"base_port": 65400},
     {"api_port": 23850}, {"accel": "xen"}],
)
def test_bad_layouts_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LabLayout(Path("/lab"), **kwargs)  # type: ignore[arg-type]


def test_saved_layout_round_trips_and_follows_a_moved_dir(tmp_path: Path) -> None:
    lab = LabLayout(tmp_path / "a", nodes=5, base_port=25000, api_port=9000, accel="tcg",
                    images_dir=Path("/img"), vms_seeded=True, cluster_mode=True)
    lab.save()
    assert LabLayout.load(lab.root) == lab
    (tmp_path / "a").rename(tmp_path / "b")
    moved = LabLayout.load(tmp_path / "b")
    assert moved is not None and moved.root == tmp_path / "b" and moved.nodes == 5
    assert LabLayout.load(tmp_path / "nothing") is None


def test_with_options_keeps_what_was_not_given() -> None:
    lab = LabLayout(Path("/lab"), nodes=5, api_port=9000)
    changed = lab.with_options(nodes=None, api_port=9100, accel=None)
    assert (changed.nodes, changed.api_port, changed.accel) == (5, 9100, "auto")


def test_a_lab_saved_before_cluster_mode_runs_its_own_plan(tmp_path: Path) -> None:
    lab = LabLayout(tmp_path, nodes=2)
    lab.save()
    data = json.loads(lab.lab_json.read_text())
    del data["cluster_mode"]
    lab.lab_json.write_text(json.dumps(data))
    loaded = LabLayout.load(tmp_path)
    assert loaded is not None and not loaded.cluster_mode


def test_a_spare_base_port_skips_a_lab_up_in_network_namespaces() -> None:
    """Such a lab listens in its namespaces, not on loopback: its ports look free. Its bridge
    shows it, and a second lab on the same base would take its network."""
    import random

    from corral.lab.layout import spare_base_port

    state = random.getstate()  # the process's other labs keep their own random bases
    try:
        random.seed(5)
        first = spare_base_port()
        random.seed(5)
        assert spare_base_port(in_use=lambda base: base == first) != first
    finally:
        random.setstate(state)
