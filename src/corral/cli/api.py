"""`corral api ...`: running the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="The REST API server.", no_args_is_help=True)


@app.command()
def serve(
    etcd: Annotated[str, typer.Option(help="etcd client URLs, comma separated.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8470,
) -> None:
    """Serve the API (stateless: run one per host, or several)."""
    from corral.api.serve import serve as run  # keeps FastAPI out of every other command

    endpoints = [e.strip() for e in etcd.split(",") if e.strip()]
    if not endpoints:
        raise typer.BadParameter("at least one etcd URL is needed", param_hint="--etcd")
    run(endpoints, host, port)
