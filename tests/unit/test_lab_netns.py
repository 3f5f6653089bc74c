"""The lab network's names, addresses and ip commands (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.lab.layout import LabLayout
from corral.lab.netns import plan_cut, plan_down, plan_uncut, plan_up


def test_each_lab_draws_its_own_24_from_the_port_block() -> None:
    a = LabLayout(Path("/a"), base_port=23800, netns=True)
    b = LabLayout(Path("/b"), base_port=24200, netns=True)  # next free port block
    assert a.subnet_prefix != b.subnet_prefix
    high = LabLayout(Path("/c"), base_port=65000, api_port=8000, netns=True)
    assert high.subnet_prefix == "198.19.251" and high.host_address(3) == "198.19.251.3"
    assert high.bridge_address == "198.19.251.254"
    assert max(len(high.veth(99)), len(high.bridge)) <= 15  # IFNAMSIZ


def test_loopback_mode_keeps_127() -> None:
    lab = LabLayout(Path("/a"))
    assert lab.host_address(2) == "127.0.0.1"
    assert lab.etcd_member(2).client_url == "http://127.0.0.1:23802"
    assert lab.ports[0] == lab.api_port and len(lab.ports) == 1 + 3 * 3
    assert LabLayout(Path("/a"), netns=True).ports == [lab.api_port]


def test_plan_up_and_down() -> None:
    lab = LabLayout(Path("/lab"), nodes=2, base_port=30000, netns=True)
    up = [" ".join(c) for c in plan_up(lab)]
    assert up[0] == "ip link add crl234 type bridge"
    assert "ip addr add 198.18.234.254/24 dev crl234" in up
    assert "ip link add crl234n2 type veth peer name eth0 netns corral-234-n2" in up
    assert "ip -n corral-234-n2 addr add 198.18.234.2/24 dev eth0" in up
    assert not any("route" in c for c in up)  # nothing leaves the bridge
    down = [" ".join(c) for c in plan_down(lab)]
    assert down[-1] == "ip link del crl234" and "ip netns del corral-234-n1" in down


def test_watchdog_must_fire_before_the_lease_expires() -> None:
    with pytest.raises(ValueError, match="watchdog timeout"):
        LabLayout(Path("/a"), lease_ttl=5, watchdog_timeout=5)
    assert LabLayout(Path("/a"), lease_ttl=5, watchdog_timeout=0).watchdog_timeout == 0


def test_layout_round_trips_the_new_fields(tmp_path: Path) -> None:
    lab = LabLayout(tmp_path, netns=True, lease_ttl=6, watchdog_timeout=4.5)
    lab.save()
    assert LabLayout.load(tmp_path) == lab


def test_partial_cuts_route_etcd_ports_apart_from_the_rest() -> None:
    lab = LabLayout(Path("/lab"), nodes=3, base_port=30000, netns=True)
    ns = "ip -n corral-234-n3"
    etcd = [" ".join(c) for c in plan_cut(lab, 3, "etcd")]
    # The other members' client (base+i) and peer (base+100+i) ports, both ways, go to a
    # table that drops the lab's /24; nothing else is touched.
    assert etcd == [
        f"{ns} route add blackhole 198.18.234.0/24 table 100",
        f"{ns} rule add priority 100 ipproto 6 dport 30001-30003 table 100",
        f"{ns} rule add priority 101 ipproto 6 dport 30101-30103 table 100",
        f"{ns} rule add priority 102 ipproto 6 sport 30001-30003 table 100",
        f"{ns} rule add priority 103 ipproto 6 sport 30101-30103 table 100",
    ]
    peers = [" ".join(c) for c in plan_cut(lab, 3, "peers")]
    assert peers[1:5] == [
        f"{ns} rule add priority 90 ipproto 6 dport 30001-30003 table main",
        f"{ns} rule add priority 91 ipproto 6 dport 30101-30103 table main",
        f"{ns} rule add priority 92 ipproto 6 sport 30001-30003 table main",
        f"{ns} rule add priority 93 ipproto 6 sport 30101-30103 table main",
    ]
    assert peers[5] == f"{ns} rule add priority 94 to 198.18.234.0/24 table 100"
    undo = [" ".join(c) for c in plan_uncut(lab, 3)]
    for prio in [*range(100, 104), *range(90, 95)]:
        assert f"{ns} rule del priority {prio}" in undo
    assert undo[-1] == f"{ns} route flush table 100"
    with pytest.raises(ValueError, match="etcd, peers"):
        plan_cut(lab, 3, "api")

