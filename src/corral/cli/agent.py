"""`corral agent run`: the per-host daemon (started by systemd, or by the lab)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The per-host agent.", no_args_is_help=True)


@app.command("run")
def run_agent(
    node: str = typer.Option(..., help="This host's name in the cluster."),
    data_dir: Path = typer.Option(Path("/var/lib/corral"), help="Host state directory."),
    images_dir: Path = typer.Option(Path("/var/lib/corral/images"), help="Boot images."),
    etcd: str = typer.Option("http://127.0.0.1:2379", help="etcd client URLs, comma-separated."),
    listen: str = typer.Option("127.0.0.1:0", help="host:port of the console endpoint."),
    accel: str = typer.Option("auto", help="auto (boot probe), kvm or tcg."),
    lease_ttl: int = typer.Option(9, min=2, help="Host lease TTL in seconds."),
    watchdog_socket: Path | None = typer.Option(
        None, help="Feed this watchdog (lab watchdog or watchdog-mux) after each renewal."),
    watchdog_timeout: float = typer.Option(
        0.0, help="Seconds the watchdog lets this agent go unfed (paces the renewals); 0: "
                  "take it from the watchdog. Must be below --lease-ttl. The host publishes "
                  "the fence time the watchdog acknowledges, not this."),
    pki_dir: Path | None = typer.Option(
        None, help="The host's TLS files (ca.crt, host.crt, host.key): etcd over TLS, and the "
                   "console served over HTTPS to clients with a certificate of the cluster "
                   "CA only."),
    recent_interval: float = typer.Option(
        30.0, min=1.0, help="Seconds between writes of the host's recent usage (the "
                            "balancer's input) to etcd."),
    shared_machine: bool = typer.Option(
        False, "--shared-machine",
        help="This host shares its machine with other hosts (a lab): the machine's CPU load "
             "is not this host's, so it publishes only its VMs' demand to the balancer."),
    migration_ports: str | None = typer.Option(
        None, help="LOW-HIGH: the ports a migration's streams to this host listen on (open them "
                   "in a firewall between hosts); unset: ports the kernel picks from its "
                   "ephemeral range."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    if accel not in ("auto", "kvm", "tcg"):
        raise typer.BadParameter("must be auto, kvm or tcg", param_hint="--accel")
    from corral.host.ports import PortRange

    try:
        ports = PortRange.parse(migration_ports) if migration_ports is not None else None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--migration-ports") from None
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter("must be host:port", param_hint="--listen")
    # Imported here: every other command starts faster without the agent's dependencies.
    import asyncio
    import logging

    from corral.agent.main import run
    from corral.agent.settings import AgentSettings
    from corral.pki.files import TLSFiles, missing_in_pki_dir

    if pki_dir is not None and (missing := missing_in_pki_dir(pki_dir)):
        raise typer.BadParameter(f"{', '.join(map(str, missing))} missing",
                                 param_hint="--pki-dir")

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = AgentSettings(
        node=node, data_dir=data_dir.resolve(), images_dir=images_dir.resolve(),
        etcd=[u.strip() for u in etcd.split(",") if u.strip()],
        listen_host=host, listen_port=int(port),
        accel=accel,  # type: ignore[arg-type]
        lease_ttl=lease_ttl,
        watchdog_socket=watchdog_socket, watchdog_timeout=watchdog_timeout,
        tls=TLSFiles.in_dir(pki_dir.resolve(), "host") if pki_dir else None,
        shared_machine=shared_machine, recent_interval=recent_interval,
        migration_ports=ports,
    )
    try:
        settings.check()
    except ValueError as e:
        typer.echo(f"Error: {e} (--watchdog-timeout, --lease-ttl)", err=True)
        raise typer.Exit(2) from None
    asyncio.run(run(settings))
