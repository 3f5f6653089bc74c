"""`corral api ...`: running the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.api.wire import DEFAULT_MAX_IN_FLIGHT, AccessLog

app = typer.Typer(help="The REST API server.", no_args_is_help=True)


@app.command()
def serve(
    etcd: Annotated[str, typer.Option(help="etcd client URLs, comma separated.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8470,
    pki_dir: Annotated[Path | None, typer.Option(
        help="The host's TLS files (ca.crt, host.crt, host.key; ca.key and admin.crt|key on "
             "a full host, to admit members): etcd over TLS, HTTPS with the host certificate, "
             "agents over mutual TLS.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        help="Serve HTTPS with this certificate (PEM; with --tls-key), instead of the host "
             "certificate of --pki-dir.")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        help="The certificate's private key (PEM).")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Worker processes sharing the port, each with its own view of the "
                    "cluster (more than the host's cores does not help).")] = 1,
    max_in_flight: Annotated[int, typer.Option(
        min=1, help="The most requests one process serves at once (fewer while they are "
                    "slower than usual); beyond it, 503 with Retry-After at once instead of a "
                    "queue. Per worker.")] = DEFAULT_MAX_IN_FLIGHT,
    access_log: Annotated[AccessLog, typer.Option(
        help="Which requests get a line on stderr: 'changes' (those that may change "
             "something, and answers of 500 or more), 'all' (reads too), 'none'. Refusals "
             "are counted into one line every 10 s.")] = AccessLog.CHANGES,
) -> None:
    """Serve the API (stateless: run one per host, or several)."""
    from corral.api.serve import serve as run  # keeps FastAPI out of every other command

    endpoints = [e.strip() for e in etcd.split(",") if e.strip()]
    if not endpoints:
        raise typer.BadParameter("at least one etcd URL is needed", param_hint="--etcd")
    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("give both or neither of --tls-cert and --tls-key",
                                 param_hint="--tls-cert/--tls-key")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not path.is_file():
            raise typer.BadParameter(f"no such file: {path}", param_hint=option)
    if pki_dir is not None:
        from corral.pki.files import missing_in_pki_dir

        if missing := missing_in_pki_dir(pki_dir):
            raise typer.BadParameter(f"{', '.join(map(str, missing))} missing",
                                     param_hint="--pki-dir")
        pki_dir = pki_dir.resolve()
    run(endpoints, host, port, tls_cert, tls_key, pki_dir, workers, max_in_flight, access_log)
