"""`corral cluster expected 1` and `corral cluster rejoin`: the way out when a cluster lost
its quorum for good, and the way back for the host it was rebuilt without. Both run on the
host they change (as root), from its host config."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from corral.cli.client import fail
from corral.cli.cluster import HostConfigOpt, _local_config, _run, _run_services, _say
from corral.cli.output import print_json

# Registered on `corral cluster` (cli.cluster's app) where that module ends.
commands = typer.Typer()


def _cluster_host(host_config: Any) -> Any:
    config = _local_config(host_config)
    if config is None:
        fail("this machine is no cluster host: no host config (/etc/corral/host.json, "
             "$CORRAL_HOST_CONFIG or --host-config)", 2)
    if config.tls is None:
        fail("this host's config has no TLS files: it was not set up by `corral cluster "
             "create` or `join`", 2)
    from corral.pki.files import missing_in_pki_dir

    missing = missing_in_pki_dir(config.tls.ca_cert.parent)
    if missing:
        fail(f"this host lacks its TLS files: {', '.join(map(str, missing))}", 2)
    return config


def _run_flow(coro: Any) -> Any:
    """As cli.cluster's _run, and etcd's refusals of a membership or auth change too."""
    from corral.cluster.etcd_auth import AuthSetupError
    from corral.cluster.members import MembershipError

    try:
        return _run(coro)
    except (MembershipError, AuthSetupError, OSError) as e:
        fail(str(e))


@commands.command()
def expected(
    votes: Annotated[int, typer.Argument(help="The votes the cluster is to expect: 1, this "
                                              "host alone.")],
    yes_i_know: Annotated[bool, typer.Option(
        "--yes-i-know", help="Do not ask (scripts): you have made sure the other hosts are "
                             "off.")] = False,
    host_config: HostConfigOpt = None,
) -> None:
    """EMERGENCY: carry the cluster on with this host alone, when the others are gone for
    good. Rebuilds etcd as a one-member cluster from this host's data (a new cluster epoch);
    the hosts left out come back only through `corral cluster rejoin`."""
    from corral.setup.override import OverridePlan, expected_one, warning

    if votes != 1:
        fail("votes: only `expected 1` exists (a lone survivor carries the cluster on)", 2)
    config = _cluster_host(host_config)
    if not yes_i_know and not sys.stdin.isatty():
        fail("refused: no terminal to confirm on; after making sure the other hosts are off, "
             "run it again with --yes-i-know", 2)

    def confirm(plan: OverridePlan) -> bool:
        typer.secho(warning(config, plan), fg=typer.colors.RED, bold=True, err=True)
        if yes_i_know:
            return True
        return bool(typer.confirm(f"rebuild cluster {config.cluster} around {config.name} "
                                  "alone?", default=False, err=True))

    info = _run_flow(expected_one(config, _run_services(config), _say, confirm))
    typer.echo(f"cluster {info.name} now runs on {config.name} alone, epoch {info.epoch}; "
               "HA recovers the other hosts' HA VMs whose disks it can reach once their "
               "watchdogs have surely fired")


@commands.command()
def rejoin(
    server: Annotated[str | None, typer.Argument(
        help="Address (or address:port) of a cluster host's API (default: another member "
             "of this host's config).")] = None,
    host_config: HostConfigOpt = None,
) -> None:
    """Join again, clean, after the cluster was rebuilt without this host: its old etcd data
    is moved aside and it starts as a new member."""
    from corral.setup.rejoin import rejoin_cluster

    config = _cluster_host(host_config)
    bundle = _run_flow(rejoin_cluster(config, _run_services(config), _say, server))
    typer.echo(f"{config.name} is a member of cluster {bundle.cluster} again (epoch "
               f"{bundle.epoch}, etcd member {bundle.member_id})")


def say_if_dropped(config: Any, as_json: bool) -> None:
    """For `cluster status` on a host: when the cluster no longer lists this host's member,
    say so (and exit 1) instead of showing an old membership."""
    from corral.agent.standing_watch import read_notice
    from corral.cluster.standing import DROPPED_ADVICE
    from corral.setup.rejoin import standing_here

    verdict = _run_flow(standing_here(config))
    if verdict.standing != "dropped":
        return
    notice = read_notice(config.qemu_run_dir)
    since = notice.since if notice is not None else None
    if as_json:
        print_json({"host": config.name, "member": False, "reason": verdict.reason,
                    "since": since})
    else:
        when = ""
        if since is not None:
            at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since))
            when = f" (its agent saw it at {at} UTC)"
        typer.secho(f"host {config.name} is NOT A MEMBER of cluster {config.cluster} any "
                    f"more{when}: {verdict.reason}.\n{DROPPED_ADVICE}",
                    fg=typer.colors.RED, bold=True)
    raise typer.Exit(1)
