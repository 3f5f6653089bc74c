"""A lab built as an admin builds a cluster: `cluster create` on n1, `token` and `join` for
n2 and n3, each run inside its host's network namespace. Its etcd, API and agent traffic is
TLS of the cluster's CA alone; a bad token changes nothing; one of three hosts lost, the two
left keep their quorum and recover its HA VM."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.host import config as host_config
from corral.host.config import HostConfig
from corral.lab.layout import LabLayout
from corral.pki import tokens
from tests.e2e.conftest import FAULT_LAB_ARGS, need_root
from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.e2e
HA_VM = 101  # tiny2, on n2


@pytest.fixture(scope="module")
def cluster_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "clab-", "--vms", "3", "--cluster", *FAULT_LAB_ARGS) as lab:
        yield lab


def layout(lab: Lab) -> LabLayout:
    loaded = LabLayout.load(lab.root)
    assert loaded is not None and loaded.cluster_mode
    return loaded


def cluster_keys(lab: Lab) -> dict[str, Any]:
    """What a refused join must not change: members and every host's record."""
    status = lab.json("cluster", "status")
    return {"members": sorted((m["id"], m["voter"]) for m in status["members"]),
            "hosts": sorted(h["name"] for h in status["hosts"])}


def test_three_voters_over_tls_each_host_its_own_api(cluster_lab: Lab) -> None:
    lab, lay = cluster_lab, layout(cluster_lab)
    status = lab.json("cluster", "status")
    assert status["quorum"] and sorted(status["voters"]) == ["n1", "n2", "n3"]
    assert not status["learners"] and status["cluster"]["epoch"] == 1
    assert {h["name"] for h in status["hosts"] if h["agent_online"]} == {"n1", "n2", "n3"}
    assert lay.ca_file is not None
    ca = ssl.create_default_context(cafile=str(lay.ca_file))
    for i in (1, 2, 3):
        # Each host's API answers over HTTPS with a certificate of the cluster's CA.
        assert httpx.get(lay.host_api_url(i) + "/api/v1/health", verify=ca,
                         timeout=5).status_code == 200


def test_every_port_refuses_plain_http(cluster_lab: Lab) -> None:
    lay = layout(cluster_lab)
    nodes = {n["name"]: n for n in cluster_lab.json("node", "list")}
    for i in (1, 2, 3):
        addr = lay.host_address(i)
        ports = {"etcd client": lay.base_port + i, "etcd peer": lay.base_port + 100 + i,
                 "API": lay.host_api_port(i), "agent": lay.agent_port(i)}
        assert nodes[f"n{i}"]["agent_url"].startswith("https://")
        for what, port in ports.items():
            try:
                reply = httpx.get(f"http://{addr}:{port}/health", timeout=5)
            except httpx.HTTPError:
                continue  # the TLS server hung up on it
            # Go answers a plain request on a TLS port with a 400 of its own.
            assert reply.status_code == 400, f"n{i} {what} answered plain HTTP: {reply}"


def test_bad_and_used_tokens_are_refused_and_change_nothing(cluster_lab: Lab) -> None:
    lab, lay = cluster_lab, layout(cluster_lab)
    before = cluster_keys(lab)
    token = lab.corral("cluster", "token", "--ttl", "600").stdout.strip()
    parsed = tokens.parse_token(token)
    server = f"{lay.host_address(1)}:{lay.host_api_port(1)}"
    # A fourth host of its own directories (the refusals come before it would run anything).
    spare = lay.root / "spare"
    plan = host_config.save(HostConfig.for_lab(
        spare, "n9", cluster="lab", address="198.18.0.99", etcd_client_port=2379,
        etcd_peer_port=2380, agent_port=8471, api_port=8470, images_dir=lay.images_dir),
        spare / "plan.json")
    for bad, reason in (
        (f"{parsed.id}.{'x' * 16}.{parsed.ca_hash}", "wrong secret"),
        (f"{parsed.id}.{parsed.secret}.{'0' * 64}", "not the cluster the token was made for"),
        ("not-a-token", "token:"),
    ):
        done = lab.corral("cluster", "join", server, "--token", bad, "--host-config",
                          str(plan), check=False)
        assert done.returncode != 0 and reason in done.stderr, done.stderr
        assert cluster_keys(lab) == before
    assert not (spare / "nodes" / "n9" / "etc" / "host.json").exists()
    assert cluster_keys(lab) == before


def test_one_host_of_three_lost_the_others_recover_its_ha_vm(cluster_lab: Lab) -> None:
    lab = cluster_lab
    lab.corral("ha", "add", str(HA_VM))
    vm = wait_until(lambda: next((v for v in lab.json("vm", "list") if v["vmid"] == HA_VM
                                  and v["status"] == "running"), None), 60,
                    "the HA VM running")
    assert vm["node"] == "n2"
    lab.corral("lab", "kill-node", "n2")
    try:
        moved = wait_until(
            lambda: next((v for v in lab.json("vm", "list") if v["vmid"] == HA_VM
                          and v["node"] != "n2" and v["status"] == "running"), None), 60,
            "the HA VM running on another host")
        assert moved["node"] in ("n1", "n3")
        status = lab.json("cluster", "status")
        assert status["quorum"] and sorted(status["healthy_voters"]) == ["n1", "n3"]
    finally:
        lab.corral("lab", "start-node", "n2")
    wait_until(lambda: lab.json("cluster", "status")["quorum"]
               and len(lab.json("cluster", "status")["healthy_voters"]) == 3, 60,
               "n2 back as a healthy voter")
    assert [v["node"] for v in lab.json("vm", "list") if v["vmid"] == HA_VM] == [moved["node"]]
