"""The `corral` command: one sub-command per noun."""

from __future__ import annotations

import typer

from corral.cli.agent import app as agent_app
from corral.cli.api import app as api_app
from corral.cli.cluster import app as cluster_app
from corral.cli.cluster import witness_app
from corral.cli.ha import app as ha_app
from corral.cli.image import app as image_app
from corral.cli.lab import app as lab_app
from corral.cli.node import app as node_app
from corral.cli.sim import app as sim_app
from corral.cli.task import app as task_app
from corral.cli.vm import app as vm_app
from corral.cli.watchdog import watchdog_mux

app = typer.Typer(
    name="corral",
    help="Corral: a cluster manager for QEMU/KVM virtual machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cluster_app, name="cluster")
app.add_typer(witness_app, name="witness")
app.add_typer(vm_app, name="vm")
app.add_typer(node_app, name="node")
app.add_typer(task_app, name="task")
app.add_typer(api_app, name="api")
app.add_typer(lab_app, name="lab")
app.add_typer(image_app, name="image")
app.add_typer(agent_app, name="agent")
app.add_typer(ha_app, name="ha")
app.add_typer(sim_app, name="sim")
app.command("watchdog-mux")(watchdog_mux)

if __name__ == "__main__":
    app()
