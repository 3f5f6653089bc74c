"""`corral cluster ...` and `corral witness ...`: building a cluster of real hosts.

create, join and witness setup run on the host they set up (as root: they write /etc/corral
and systemd units), leave on the host it takes out; token and remove-node go through the
API; status reads etcd directly when run on a cluster host, so a host that lost its quorum
can still say so.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from corral.cli.client import connect, fail, write_client_config
from corral.cli.options import JsonOpt
from corral.cli.output import print_json, table

app = typer.Typer(help="The cluster: create it, join hosts, show and change its members.",
                  no_args_is_help=True)
witness_app = typer.Typer(help="A quorum witness: an etcd voter that runs no VMs.",
                          no_args_is_help=True)

HOST_CONFIG_ENV = "CORRAL_HOST_CONFIG"
NameOpt = Annotated[str | None, typer.Option(
    "--name", help="This host's name in the cluster (default: its hostname).")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="The IP address the other hosts reach this one at (default: its only "
                      "non-loopback address).")]
HostConfigOpt = Annotated[Path | None, typer.Option(
    "--host-config", help="A prepared host description (host.json) instead of the defaults "
                          "for a real host.")]
MigrationPortsOpt = Annotated[str | None, typer.Option(
    "--migration-ports", help="LOW-HIGH: the ports migrations to this host listen on, for a "
                              "firewall between hosts (default: the kernel's ephemeral "
                              "range).")]
ClientConfigOpt = Annotated[Path | None, typer.Option(
    "--client-config", help="Where to write the CLI's config (default: ~/.config/corral/"
                            "client.json, or $CORRAL_CONFIG).")]


def _say(message: str) -> None:
    typer.echo(f"  {message}")


def _default_address() -> str:
    import psutil

    stats = psutil.net_if_stats()
    found = sorted({
        a.address for nic, addrs in psutil.net_if_addrs().items()
        if nic != "lo" and stats.get(nic) is not None and stats[nic].isup
        for a in addrs if a.family == socket.AF_INET and not a.address.startswith("127.")
    })
    if len(found) != 1:
        what = ", ".join(found) if found else "none"
        fail(f"--address: cannot tell which address the other hosts reach this one at "
             f"(non-loopback IPv4 addresses: {what}); say it with --address", 2)
    return found[0]


def _host_config(cluster: str, role: Literal["host", "witness"], name: str | None,
                 address: str | None, prepared: Path | None,
                 migration_ports: str | None = None) -> Any:
    config = _described_host(cluster, role, name, address, prepared)
    if migration_ports is None:
        return config
    from pydantic import ValidationError

    from corral.cluster.records import what_is_wrong
    from corral.host.config import HostConfig

    try:
        return HostConfig.model_validate(config.model_dump()
                                         | {"migration_ports": migration_ports})
    except ValidationError as e:
        fail(f"--migration-ports: {what_is_wrong(e)}", 2)


def _described_host(cluster: str, role: Literal["host", "witness"], name: str | None,
                    address: str | None, prepared: Path | None) -> Any:
    from corral.host import config as host_config
    from corral.setup.join_rules import check_address, check_host_name

    try:
        if prepared is not None:
            config = host_config.load(prepared)
            update: dict[str, Any] = {"role": role}
            if cluster:
                update["cluster"] = cluster
            return host_config.HostConfig.model_validate(config.model_dump() | update)
    except host_config.HostConfigError as e:
        fail(str(e), 2)
    try:
        host = check_host_name(name or socket.gethostname().split(".")[0])
    except ValueError as e:
        fail(f"--name: {e}", 2)
    try:
        ip = check_address(address or _default_address())
    except ValueError as e:
        fail(f"--address: {e}", 2)
    return host_config.HostConfig.for_real_host(cluster=cluster or "pending", name=host,
                                                address=ip, role=role)


def _run(coro: Any) -> Any:
    import asyncio

    from corral.host.services import ServicesError
    from corral.pki.pem import PEMError
    from corral.setup.local import SetupError

    try:
        return asyncio.run(coro)
    except (SetupError, ServicesError, PEMError) as e:
        fail(str(e))


@app.command()
def create(
    cluster: Annotated[str, typer.Argument(help="The new cluster's name.")],
    name: NameOpt = None,
    address: AddressOpt = None,
    host_config: HostConfigOpt = None,
    shared_dir: Annotated[Path | None, typer.Option(
        help="A directory every host mounts (NFS): registered as storage 'shared'.")] = None,
    migration_ports: MigrationPortsOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Create a cluster on this host: its CA, the first etcd member, agent and API."""
    from corral.cluster.models import check_name
    from corral.setup.create import create_cluster

    try:
        check_name(cluster)
    except ValueError as e:
        fail(f"cluster: {e}", 2)
    config = _host_config(cluster, "host", name, address, host_config, migration_ports)
    created = _run(create_cluster(config, _run_services(config), _say, shared_dir))
    path = write_client_config(created.api_url, created.api_token, client_config,
                               ca=str(created.ca_file))
    typer.echo(f"cluster {cluster} created on {config.name}\n"
               f"  API: {created.api_url} (client config {path})\n"
               f"next: `corral cluster token`, then on each host "
               f"`corral cluster join {config.address} --token <token>`")


def _run_services(config: Any) -> Any:
    from corral.setup.local import SetupError, services_for

    try:
        return services_for(config)
    except SetupError as e:
        fail(str(e))


def _join(server: str, token: str, role: Literal["host", "witness"], name: str | None,
          address: str | None,
          host_config: Path | None, client_config: Path | None,
          migration_ports: str | None = None) -> None:
    from corral.setup.join import join_cluster

    config = _host_config("", role, name, address, host_config, migration_ports)
    joined = _run(join_cluster(server, token, config, _run_services(config), _say))
    if joined.api_url and joined.api_token:
        path = write_client_config(joined.api_url, joined.api_token, client_config,
                                   ca=joined.ca_file)
        typer.echo(f"{config.name} joined cluster {joined.cluster}\n"
                   f"  API: {joined.api_url} (client config {path})")
    else:
        typer.echo(f"witness {config.name} joined cluster {joined.cluster} as an etcd voter")


@app.command()
def join(
    server: Annotated[str, typer.Argument(help="Address (or address:port) of a cluster "
                                                "host's API.")],
    token: Annotated[str, typer.Option(help="A join token from `corral cluster token`.")],
    name: NameOpt = None,
    address: AddressOpt = None,
    host_config: HostConfigOpt = None,
    migration_ports: MigrationPortsOpt = None,
    client_config: ClientConfigOpt = None,
) -> None:
    """Join this host to a cluster: etcd learner first, voter once caught up."""
    _join(server, token, "host", name, address, host_config, client_config, migration_ports)


@witness_app.command("setup")
def witness_setup(
    server: Annotated[str, typer.Argument(help="Address (or address:port) of a cluster "
                                                "host's API.")],
    token: Annotated[str, typer.Option(help="A token from `corral cluster token --witness`.")],
    name: NameOpt = None,
    address: AddressOpt = None,
    host_config: HostConfigOpt = None,
) -> None:
    """Make this small machine the cluster's quorum witness (an etcd voter, no VMs)."""
    _join(server, token, "witness", name, address, host_config, None)


@app.command("token")
def make_token(
    ttl: Annotated[int, typer.Option(help="Seconds the token stays valid.", min=60)] = 3600,
    witness: Annotated[bool, typer.Option("--witness", help="For a witness, not a host.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """A one-time join token (it carries the hash of the cluster CA)."""
    out = connect().post("/cluster/tokens", {"ttl_seconds": ttl,
                                             "purpose": "witness" if witness else "host"})
    if as_json:
        print_json(out)
        return
    verb = "corral witness setup" if witness else "corral cluster join"
    typer.echo(out["token"])
    typer.echo(f"valid for {ttl}s, for one {out['purpose']}: `{verb} <address> --token "
               f"{out['token']}`", err=True)


def _local_config(path: Path | None) -> Any:
    from corral.host import config as host_config

    candidate = path or Path(os.environ.get(HOST_CONFIG_ENV, "/etc/corral/host.json"))
    if not candidate.exists():
        if path is not None:
            fail(f"--host-config: {path} does not exist", 2)
        return None
    try:
        return host_config.load(candidate)
    except host_config.HostConfigError as e:
        fail(str(e), 2)


async def _status_here(config: Any) -> Any:
    from corral.cluster.store import Store
    from corral.setup.local import host_tls
    from corral.setup.status import gather

    tls = host_tls(config)
    async with Store([config.local_client_url], timeout=3.0, tls=tls) as store:
        return await gather(store, tls)


@app.command()
def status(host_config: HostConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Members, voters and learners, quorum, leader, witness, each host's agent and lease."""
    config = _local_config(host_config)
    if config is not None and config.tls is not None:
        from corral.cli.cluster_recovery import say_if_dropped

        say_if_dropped(config, as_json)
        out = _run(_status_here(config)).model_dump(mode="json")
    else:
        out = connect().get("/cluster/status")
    if as_json:
        print_json(out)
        return
    info = out.get("cluster") or {}
    quorum = "yes" if out["quorum"] else "NO: no majority of the voters answers"
    typer.echo(f"cluster {info.get('name', '?')} (epoch {info.get('epoch', '?')}): "
               f"quorum {quorum}; leader {out.get('leader') or '-'}; "
               f"{len(out['healthy_voters'])}/{len(out['voters'])} voters healthy"
               + (f"; witness {', '.join(out['witnesses'])}" if out["witnesses"] else ""))
    table(["MEMBER", "HOST", "ROLE", "VOTER", "HEALTHY", "LEADER", "PEER"],
          [[m["name"], m["host"] or "-", m["role"] or "-", m["voter"], m["healthy"],
            m["leader"], ", ".join(m["peer_urls"])] for m in out["members"]])
    if out["hosts"]:
        table(["HOST", "ROLE", "ADDRESS", "IN ETCD", "AGENT", "LEASE"],
              [[h["name"], h["role"], h["address"] or "-", h["in_etcd"],
                "-" if h["agent_online"] is None else ("online" if h["agent_online"]
                                                       else "offline"),
                f"{h['lease_ttl']}s" if h["lease_ttl"] is not None else "-"]
               for h in out["hosts"]])


@app.command("remove-node")
def remove_node(
    name: Annotated[str, typer.Argument(help="The host or witness to remove.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Remove a host or witness from the cluster (refused if it would cost the quorum)."""
    if not yes:
        typer.confirm(f"remove {name} from the cluster (its etcd member, user and record)?",
                      abort=True)
    out = connect().delete(f"/cluster/members/{name}")
    typer.echo(f"removed {out['name']}: etcd member {out['member'] or '-'}, "
               f"user {out['user'] or '-'}")


@app.command()
def leave(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask (scripts).")] = False,
    host_config: HostConfigOpt = None,
) -> None:
    """Take THIS host out of its cluster: its etcd member, user, record and node keys go,
    its services stop, its etcd data, certificates and host config are deleted. Refused
    while VMs are on it or when it would cost the quorum; run again to finish a leave that
    stopped half-way."""
    from corral.setup.join_rules import Refusal
    from corral.setup.leave import leave as leave_cluster
    from corral.setup.leave import survey
    from corral.setup.leave_rules import summary

    config = _local_config(host_config)
    if config is None:
        fail("refused: this machine is no cluster member: no host config (/etc/corral/"
             "host.json, $CORRAL_HOST_CONFIG or --host-config)", 2)
    if config.tls is None:
        fail("refused: this host's config has no TLS files: it was not set up by `corral "
             "cluster create` or `join`", 2)
    if not yes and not sys.stdin.isatty():
        fail("refused: no terminal to confirm on; run it again with --yes", 2)
    found = _run(survey(config))
    if isinstance(found.decision, Refusal):
        fail(f"refused: {found.decision.message}")
    if not yes and not typer.confirm(summary(found.here, found.decision), default=False):
        fail("not confirmed: nothing was changed")
    _run(leave_cluster(config, _run_services(config), found, _say))
    typer.echo(f"{config.name} left cluster {config.cluster}. Kept: its data dir "
               f"{config.data_dir} (images, local storage, logs) and its disabled unit files. "
               "To join again: `corral cluster join <address> --token <new token>`")


from corral.cli.cluster_recovery import commands as _recovery  # noqa: E402

app.registered_commands += _recovery.registered_commands  # expected 1, rejoin
