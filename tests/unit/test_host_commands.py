"""The command lines of a host's services (pure), and that each CLI accepts its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main

from corral.cli.main import app
from corral.host.commands import (
    AGENT,
    API,
    ETCD,
    WATCHDOG,
    agent_command,
    api_command,
    etcd_command,
    host_commands,
    pki_dir,
    services_of,
    watchdog_command,
)
from corral.host.config import HostConfig, WatchdogSettings
from corral.lab.etcd import EtcdMember
from corral.lab.layout import LabLayout
from corral.lab.supervisor import plan_children
from corral.pki.files import TLSFiles

ENDPOINTS = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
CLUSTER = ",".join(f"h{i}=https://10.0.0.{i}:2380" for i in (1, 2, 3))


def real(**fields: Any) -> HostConfig:
    return HostConfig.for_real_host(**{
        "cluster": "prod", "name": "h2", "address": "10.0.0.2", "etcd_endpoints": ENDPOINTS,
        "initial_cluster": CLUSTER, "initial_cluster_state": "existing",
        "corral": ["/usr/local/bin/corral"], **fields})


def lab(**fields: Any) -> HostConfig:
    return HostConfig.for_lab(Path("/lab"), "n1", cluster="lab", address="127.0.0.1",
                              etcd_client_port=23801, etcd_peer_port=23901, agent_port=24001,
                              api_port=24101, images_dir=Path("/img"), python="/py", **fields)


def arg(argv: tuple[str, ...] | list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def flags(argv: tuple[str, ...] | list[str]) -> set[str]:
    return {a for a in argv if a.startswith("--")}


def test_etcd_speaks_tls_to_clients_and_peers_and_checks_their_certificates() -> None:
    config = real()
    argv = etcd_command(config).argv
    # The launcher clears a data dir that never got past its first start, then becomes etcd.
    assert argv[:4] == (config.python, "-m", "corral.host.etcd_launch", "/usr/bin/etcd")
    assert arg(argv, "--name") == "h2"
    assert arg(argv, "--data-dir") == "/var/lib/corral/etcd"
    assert arg(argv, "--listen-client-urls") == "https://10.0.0.2:2379,https://127.0.0.1:2379"
    assert arg(argv, "--advertise-client-urls") == "https://10.0.0.2:2379"
    assert arg(argv, "--listen-peer-urls") == "https://10.0.0.2:2380"
    assert arg(argv, "--initial-advertise-peer-urls") == "https://10.0.0.2:2380"
    assert arg(argv, "--initial-cluster") == CLUSTER
    assert arg(argv, "--initial-cluster-state") == "existing"
    assert arg(argv, "--initial-cluster-token") == "corral-prod"
    pki = "/etc/corral/pki"
    for flag, value in [("--cert-file", "host.crt"), ("--key-file", "host.key"),
                        ("--trusted-ca-file", "ca.crt"), ("--peer-cert-file", "host.crt"),
                        ("--peer-key-file", "host.key"), ("--peer-trusted-ca-file", "ca.crt")]:
        assert arg(argv, flag) == f"{pki}/{value}"
    assert {"--client-cert-auth", "--peer-client-cert-auth"} <= set(argv)
    assert "--force-new-cluster" not in argv
    assert etcd_command(real()).env == {}


def test_etcd_keeps_the_labs_timing_flags() -> None:
    """Pre-vote, quick elections, compaction: what the lab's members run with today."""
    lab_argv = EtcdMember("n1", Path("/d"), 1, 2).command([EtcdMember("n1", Path("/d"), 1, 2)])
    ours = etcd_command(real()).argv
    for flag in ("--heartbeat-interval", "--election-timeout", "--snapshot-count",
                 "--auto-compaction-retention", "--logger", "--log-outputs", "--log-level"):
        assert arg(ours, flag) == arg(lab_argv, flag), flag
    assert "--pre-vote" in ours


def test_etcd_without_tls_listens_plain_once_on_loopback() -> None:
    argv = etcd_command(lab(tls=False)).argv
    assert arg(argv, "--listen-client-urls") == "http://127.0.0.1:23801"
    assert not {"--cert-file", "--client-cert-auth", "--peer-client-cert-auth"} & set(argv)


def test_etcd_rebuilt_alone_and_on_an_arm_witness() -> None:
    assert etcd_command(real(), force_new_cluster=True).argv[-1] == "--force-new-cluster"
    assert etcd_command(real(), machine="aarch64").env == {"ETCD_UNSUPPORTED_ARCH": "arm64"}
    assert etcd_command(real(), machine="armv7l").env == {"ETCD_UNSUPPORTED_ARCH": "arm"}
    assert etcd_command(real(), machine="x86_64").env == {}


def test_roles_and_watchdogs_decide_the_services() -> None:
    assert services_of(real()) == [ETCD, WATCHDOG, AGENT, API]
    witness = real(role="witness", initial_cluster=CLUSTER.replace("h2=", "witness-h2="))
    assert services_of(witness) == [ETCD]
    assert [c.name for c in host_commands(witness)] == [ETCD]
    # etcd knows a witness by its member name, as the cluster admitted it.
    argv = etcd_command(witness).argv
    assert argv[argv.index("--name") + 1] == "witness-h2"
    no_dog = real(watchdog=WatchdogSettings(kind="none"))
    assert services_of(no_dog) == [ETCD, AGENT, API]
    assert watchdog_command(no_dog) is None
    assert "--watchdog-socket" not in agent_command(no_dog).argv
    assert [c.name for c in host_commands(real())] == [ETCD, WATCHDOG, AGENT, API]


def test_agent_prefers_its_own_member_and_feeds_the_mux() -> None:
    argv = agent_command(real()).argv
    assert argv[:3] == ("/usr/local/bin/corral", "agent", "run")
    assert arg(argv, "--node") == "h2"
    assert arg(argv, "--etcd") == ",".join([ENDPOINTS[1], ENDPOINTS[0], ENDPOINTS[2]])
    assert arg(argv, "--listen") == "10.0.0.2:8471"
    assert arg(argv, "--data-dir") == "/var/lib/corral"
    assert arg(argv, "--images-dir") == "/var/lib/corral/images"
    assert arg(argv, "--watchdog-socket") == "/run/corral/watchdog.sock"
    assert arg(argv, "--watchdog-timeout") == "4"
    assert arg(argv, "--lease-ttl") == "9"
    mux = watchdog_command(real())
    assert mux is not None
    assert mux.argv[:2] == ("/usr/local/bin/corral", "watchdog-mux")
    assert arg(mux.argv, "--socket") == "/run/corral/watchdog.sock"
    assert arg(mux.argv, "--device") == "/dev/watchdog"
    assert (arg(mux.argv, "--client-timeout"), arg(mux.argv, "--interval"),
            arg(mux.argv, "--device-timeout")) == ("4", "0.5", "2")
    assert arg(mux.argv, "--state-dir") == "/run/corral/watchdog-mux"


def test_api_serves_https_with_the_host_certificate() -> None:
    argv = api_command(real()).argv
    assert argv[1:3] == ("api", "serve")
    assert (arg(argv, "--host"), arg(argv, "--port")) == ("10.0.0.2", "8470")
    assert arg(argv, "--etcd").startswith("https://10.0.0.2:2379,")
    assert arg(argv, "--pki-dir") == "/etc/corral/pki"
    assert "--pki-dir" not in api_command(lab(tls=False)).argv


def test_the_agent_listens_for_migrations_within_the_configured_range() -> None:
    assert arg(agent_command(real(migration_ports="60000-60099")).argv,
               "--migration-ports") == "60000-60099"
    assert "--migration-ports" not in agent_command(real()).argv  # the kernel picks


def test_a_bad_migration_range_stops_the_agent_before_it_starts() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["agent", "run", "--node", "h1",
                                      "--migration-ports", "60100-60000"],
                                env={"COLUMNS": "200"})  # the error box wraps narrower
    assert result.exit_code == 2
    assert "Invalid value for --migration-ports" in result.output
    assert "LOW <= HIGH" in result.output


@pytest.mark.parametrize(("args", "why"), [
    (["cluster", "create", "c1"], "holds the host's own port(s) [8471, 8470]"),
    (["cluster", "join", "198.18.0.2", "--token", "t"], "must be LOW-HIGH"),
])
def test_create_and_join_refuse_a_bad_migration_range_before_anything(
        args: list[str], why: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    ports = "8000-8500" if "create" in args else "abc"
    result = CliRunner().invoke(app, [*args, "--name", "h1", "--address", "198.18.0.1",
                                      "--migration-ports", ports,
                                      "--client-config", str(tmp_path / "client.json")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert "--migration-ports: " in result.output and why in result.output
    assert not (tmp_path / "client.json").exists()


def test_a_host_described_with_a_migration_range_runs_its_agent_with_it() -> None:
    from corral.cli.cluster import _host_config

    config = _host_config("c1", "host", "h1", "198.18.0.1", None, "60000-60099")
    assert config.migration_ports == "60000-60099"
    assert arg(agent_command(config).argv, "--migration-ports") == "60000-60099"


def test_the_agent_speaks_tls_with_the_host_pki_dir() -> None:
    assert arg(agent_command(real()).argv, "--pki-dir") == "/etc/corral/pki"
    assert arg(agent_command(lab()).argv, "--pki-dir") == "/lab/nodes/n1/etc/pki"
    assert "--pki-dir" not in agent_command(lab(tls=False)).argv


@pytest.mark.parametrize("config", [real(), lab()], ids=["real", "lab"])
def test_the_pki_dir_holds_the_files_the_host_config_names(config: HostConfig) -> None:
    """The agent and the API read TLSFiles.in_dir(--pki-dir, "host"): the same files etcd is
    given one by one."""
    assert config.tls is not None
    files = TLSFiles.in_dir(pki_dir(config), "host")
    assert (files.ca, files.cert, files.key) == (config.tls.ca_cert, config.tls.cert,
                                                 config.tls.key)


def test_a_lab_host_runs_the_lab_watchdog_on_its_qemu_run_dir() -> None:
    dog = watchdog_command(lab())
    assert dog is not None
    assert dog.argv[:3] == ("/py", "-m", "corral.fencing.labdog")
    assert arg(dog.argv, "--run-dir") == "/lab/nodes/n1/run"
    assert arg(dog.argv, "--socket") == "/lab/nodes/n1/run/watchdog.sock"
    assert arg(dog.argv, "--timeout") == "6"
    assert agent_command(lab()).argv[:3] == ("/py", "-m", "corral.cli.main")


def from_layout(layout: LabLayout, i: int) -> HostConfig:
    """Host i of a lab as a HostConfig, plain HTTP as the lab runs today."""
    m = layout.etcd_member(i)
    return HostConfig.for_lab(
        layout.root, m.name, cluster="lab", address=m.host, etcd_client_port=m.client_port,
        etcd_peer_port=m.peer_port, agent_port=layout.agent_port(i), api_port=layout.api_port,
        images_dir=layout.images_dir, tls=False, python="/py",
        accel=layout.accel,
        etcd_endpoints=layout.client_urls, lease_ttl=layout.lease_ttl,
        watchdog_timeout=layout.watchdog_timeout,
        initial_cluster=",".join(f"{x.name}={x.peer_url}" for x in layout.etcd_members))


def test_the_lab_supervisor_runs_the_same_command_lines_today() -> None:
    """Nothing the lab's processes take is lost or changed on the way to one source, but
    the place of the watchdog socket (in the host's run dir now) and the cluster token."""
    layout = LabLayout(Path("/lab"), nodes=2, accel="tcg", images_dir=Path("/img"))
    plan = {c.name: list(c.argv) for c in plan_children(layout, python="/py")}
    ours = from_layout(layout, 2)

    def same(argv: list[str]) -> list[str]:
        for flag in ("--watchdog-socket", "--socket"):
            if flag in argv:
                argv[argv.index(flag) + 1] = "<socket>"
        if "--initial-cluster-token" in argv:
            argv[argv.index("--initial-cluster-token") + 1] = "<token>"
        return argv

    assert same(list(etcd_command(ours).argv)) == same(plan["n2-etcd"])
    dog = watchdog_command(ours)
    assert dog is not None and same(list(dog.argv)) == same(plan["n2-watchdog"])
    assert same(list(agent_command(ours).argv)) == same(plan["n2-agent"])
    assert flags(api_command(ours).argv) == flags(plan["api"])


def parse(argv: tuple[str, ...], prefix: int) -> dict[str, Any]:
    """Parse argv (after the program) with the real `corral` CLI, without running it: the
    parameters its command would be called with."""
    cmd: Any = typer.main.get_command(app)
    args = list(argv[prefix:])
    names = ["corral"]
    while hasattr(cmd, "get_command"):  # a group: descend to the sub-command
        ctx = cmd.make_context(" ".join(names), list(args), resilient_parsing=True)
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, args[0]
        names.append(args.pop(0))
        cmd = sub
    params: dict[str, Any] = cmd.make_context(" ".join(names), args).params
    return params


@pytest.mark.parametrize("config", [real(), lab(), lab(tls=False),
                                    real(migration_ports="60000-60099")],
                         ids=["real", "lab", "lab-plain", "real-migration-ports"])
def test_each_cli_accepts_its_command_line(config: HostConfig) -> None:
    prefix = len(config.corral)
    agent = parse(agent_command(config).argv, prefix)
    assert (agent["node"], agent["lease_ttl"]) == (config.name, 9)
    assert agent["migration_ports"] == config.migration_ports
    api = parse(api_command(config).argv, prefix)
    assert api["port"] == config.api_port
    expected_pki = pki_dir(config) if config.tls else None
    assert (agent["pki_dir"], api["pki_dir"]) == (expected_pki, expected_pki)
    dog = watchdog_command(config)
    assert dog is not None
    if config.watchdog.kind == "device":
        mux = parse(dog.argv, prefix)
        assert mux["socket"] == config.watchdog_socket


def test_a_wrong_flag_does_not_parse() -> None:
    """The check above would see a flag the CLI does not know."""
    with pytest.raises(Exception, match="No such option: --no-such-flag"):
        parse(("/c", "agent", "run", "--node", "h1", "--no-such-flag", "1"), 1)
