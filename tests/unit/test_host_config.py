"""A host's config: defaults of real and lab hosts, the checks, host.json on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from corral.host.config import (
    HostConfig,
    HostConfigError,
    HostTLS,
    WatchdogSettings,
    load,
    save,
)


def real(**fields: Any) -> HostConfig:
    return HostConfig.for_real_host(**{"cluster": "prod", "name": "h1", "address": "10.0.0.1",
                                       **fields})


def lab(name: str = "n1", **fields: Any) -> HostConfig:
    return HostConfig.for_lab(Path("/lab"), name, cluster="lab", address="127.0.0.1",
                              etcd_client_port=23801, etcd_peer_port=23901, agent_port=24001,
                              api_port=24101, images_dir=Path("/img"), python="/py", **fields)


def test_a_real_host_keeps_its_files_where_a_distribution_would() -> None:
    c = real()
    assert (c.etc_dir, c.data_dir, c.run_dir) == (
        Path("/etc/corral"), Path("/var/lib/corral"), Path("/run/corral"))
    assert c.config_path == Path("/etc/corral/host.json")
    assert c.etcd_data_dir == Path("/var/lib/corral/etcd")
    assert c.qemu_run_dir == Path("/var/lib/corral/run")
    assert c.watchdog_socket == Path("/run/corral/watchdog.sock")
    assert c.tls == HostTLS(
        ca_cert=Path("/etc/corral/pki/ca.crt"), cert=Path("/etc/corral/pki/host.crt"),
        key=Path("/etc/corral/pki/host.key"), ca_key=Path("/etc/corral/pki/ca.key"),
        admin_cert=Path("/etc/corral/pki/admin.crt"),
        admin_key=Path("/etc/corral/pki/admin.key"))
    assert (c.watchdog.kind, c.managed_by) == ("device", "systemd")
    # Alone until told otherwise: a one-member cluster of its own.
    assert c.etcd_endpoints == ["https://10.0.0.1:2379"]
    assert c.initial_cluster == "h1=https://10.0.0.1:2380"
    assert c.corral[0].startswith("/")


def test_a_lab_host_lives_below_its_node_dir() -> None:
    c = lab("n2", etcd_endpoints=["https://127.0.0.1:23801", "https://127.0.0.1:23802"])
    node = Path("/lab/nodes/n2")
    assert (c.etc_dir, c.data_dir, c.run_dir) == (node / "etc", node, node / "run")
    # Where the lab keeps them today: etcd's data, the QEMU files.
    assert (c.etcd_data_dir, c.qemu_run_dir) == (node / "etcd", node / "run")
    assert c.tls is not None and c.tls.cert == node / "etc/pki/host.crt"
    assert c.corral == ["/py", "-m", "corral.cli.main"]
    assert (c.watchdog.kind, c.watchdog.client_timeout, c.managed_by) == (
        "lab", 6.0, "supervisor")
    assert c.etcd_endpoints_local_first == ["https://127.0.0.1:23801",
                                            "https://127.0.0.1:23802"]
    assert lab(watchdog_timeout=0).watchdog.kind == "none"
    assert lab(tls=False).client_url == "http://127.0.0.1:23801"


def test_a_witness_holds_neither_the_ca_key_nor_the_admin_certificate() -> None:
    w = real(role="witness")
    assert w.tls is not None and (w.tls.ca_key, w.tls.admin_cert, w.tls.admin_key) == (
        None, None, None)
    with pytest.raises(ValidationError, match="witness keeps neither"):
        real(role="witness", tls=HostTLS.under(Path("/etc/corral"), "host"))


def test_own_endpoints_go_first_and_ipv6_is_bracketed() -> None:
    c = real(etcd_endpoints=["https://10.0.0.2:2379", "https://10.0.0.1:2379"])
    assert c.etcd_endpoints_local_first == ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    v6 = real(address="fd00::1")
    assert v6.client_url == "https://[fd00::1]:2379"
    assert v6.initial_cluster == "h1=https://[fd00::1]:2380"


@pytest.mark.parametrize(("fields", "field", "why"), [
    ({"address": "h1.example"}, "address", "must be an IP address"),
    ({"name": "-h1"}, "name", "letters, digits"),
    ({"etcd_endpoints": ["http://10.0.0.2:2379"]}, "", "not https"),
    ({"initial_cluster": "h2=https://10.0.0.2:2380"}, "", "must name this member"),
    ({"agent_port": 2379}, "", "ports of one host must differ"),
    ({"data_dir": Path("var/lib/corral")}, "data_dir", "absolute path"),
    ({"corral": ["corral"]}, "corral", "absolute path"),
    ({"lease_ttl": 4}, "", "must be below lease_ttl"),
    ({"watchdog": WatchdogSettings(client_timeout=6.0)}, "", "does not fit lease_ttl"),
    ({"run_dir": Path("/" + "r" * 100)}, "", "too deep for the watchdog socket"),
    ({"migration_ports": "60000"}, "migration_ports", "must be LOW-HIGH"),
    ({"migration_ports": "61000-60000"}, "migration_ports", "LOW <= HIGH"),
    ({"migration_ports": "65000-70000"}, "migration_ports", "within 1024-65535"),
    ({"migration_ports": "8400-8480"}, "", "migration_ports 8400-8480 holds the host's own"),
])
def test_bad_settings_are_refused_naming_the_field(fields: dict[str, Any], field: str,
                                                    why: str) -> None:
    with pytest.raises(ValidationError, match=why) as e:
        real(**fields)
    assert e.value.errors()[0]["loc"] == ((field,) if field else ())


def test_the_watchdog_interval_must_be_below_its_client_timeout() -> None:
    with pytest.raises(ValidationError, match="interval"):
        WatchdogSettings(client_timeout=1.0, interval=1.0)
    assert WatchdogSettings(kind="lab", client_timeout=1.0, interval=1.0).kind == "lab"


def test_a_host_without_watchdog_is_not_held_to_the_lease_fit() -> None:
    c = real(watchdog=WatchdogSettings(kind="none", client_timeout=30))
    assert c.watchdog.fence_time() == 0.0


def test_save_and_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    c = lab(etc_dir=tmp_path / "etc")
    path = save(c)
    assert path == tmp_path / "etc/host.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load(path) == c
    assert not list(path.parent.glob(".*.tmp"))


def test_fields_of_a_newer_version_are_ignored(tmp_path: Path) -> None:
    path = save(real(), tmp_path / "host.json")
    data = json.loads(path.read_text())
    data["from_the_future"] = {"x": 1}
    data["watchdog"]["also_new"] = True
    path.write_text(json.dumps(data))
    assert load(path) == real()


def test_load_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    with pytest.raises(HostConfigError, match=f"{path}: no host config"):
        load(path)
    path.write_text("{not json")
    with pytest.raises(HostConfigError, match=f"{path}: not JSON"):
        load(path)
    data = json.loads(real().model_dump_json())
    data["etcd_client_port"] = "many"
    path.write_text(json.dumps(data))
    with pytest.raises(HostConfigError, match=f"{path}: etcd_client_port: .*integer"):
        load(path)
    del data["cluster"]
    data["etcd_client_port"] = 2379
    path.write_text(json.dumps(data))
    with pytest.raises(HostConfigError, match=f"{path}: cluster: Field required"):
        load(path)
