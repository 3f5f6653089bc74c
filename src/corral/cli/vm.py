"""`corral vm ...`: VMs."""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from corral.cli import usage
from corral.cli.client import Api, connect
from corral.cli.migrate import migrate as migrate_command
from corral.cli.options import JsonOpt, NoWaitOpt
from corral.cli.output import fields, mem, print_json, table
from corral.cli.waiting import wait_task

app = typer.Typer(help="Virtual machines.", no_args_is_help=True)

VmidArg = Annotated[int, typer.Argument(help="VM id.")]
CONSOLE_POLL_SECONDS = 0.5


def _finish(api: Api, reply: dict[str, Any], done: str, no_wait: bool, as_json: bool) -> None:
    """Wait for the reply's task unless told not to, then report."""
    if no_wait:
        if as_json:
            print_json(reply)
        else:
            typer.echo(f"task {reply['task']} queued")
        return
    task = wait_task(api, reply["task"])
    if as_json:
        print_json(reply | {"state": task["state"], "error": task["error"]})
    else:
        typer.echo(done)


def _disks(disks: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['volume']} ({mem(d['size_mb'])})" for d in disks) or "-"


@app.command("list")
def list_vms(
    node: Annotated[str | None, typer.Option(help="Only VMs on this host.")] = None,
    status: Annotated[str | None, typer.Option(
        help="Only VMs in this status (stopped, starting, running, paused, shutting-down, "
             "unknown).")] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help="At most this many, by vmid (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List VMs by vmid."""
    vms: list[dict[str, Any]] = connect().get_list("/vms", limit, node=node, status=status)
    if as_json:
        print_json(vms)
        return
    table(
        ["VMID", "NAME", "NODE", "STATUS", "WANTED", "MEMORY", "CORES", "DISKS", "PID"],
        [
            [v["vmid"], v["name"], v["node"], v["status"], v["state"], mem(v["memory_mb"]),
             v["cores"], len(v["disks"]), v["pid"]]
            for v in vms
        ],
    )


def _balance(on: bool) -> str:
    return "yes" if on else "no (the load balancer never moves it)"


@app.command()
def show(vmid: VmidArg, as_json: JsonOpt = False) -> None:
    """Show one VM."""
    vm: dict[str, Any] = connect().get(f"/vms/{vmid}")
    if as_json:
        print_json(vm)
        return
    fields([
        ("vmid", vm["vmid"]), ("name", vm["name"]), ("node", vm["node"]),
        ("status", vm["status"]), ("wanted", vm["state"]), ("memory", mem(vm["memory_mb"])),
        ("cores", vm["cores"]), ("disks", _disks(vm["disks"])), ("image", vm["image"]),
        ("startup", vm["startup"]), ("balance", _balance(vm["balance"])),
        ("pid", vm["pid"]), ("accel", vm["accel"]),
        ("description", vm["description"] or None), ("message", vm["message"] or None),
    ])


@app.command()
def create(
    name: Annotated[str, typer.Option(help="VM name, unique in the cluster.")],
    node: Annotated[str | None, typer.Option(
        help="Host to create the VM on (default: the one the balancer's scoring picks).")]
    = None,
    memory: Annotated[int, typer.Option(help="Memory in MiB.")] = 128,
    cores: Annotated[int, typer.Option(help="Virtual CPUs.")] = 1,
    disk: Annotated[
        list[str] | None, typer.Option(help="Disk as <storage>:<size>, e.g. local:1G; repeatable.")
    ] = None,
    vmid: Annotated[int | None, typer.Option(help="VM id (default: the next free one).")] = None,
    image: Annotated[str, typer.Option(help="Boot image, or 'none' to boot the disk.")] = "tiny",
    append: Annotated[str, typer.Option(
        help="Extra kernel command line for an image boot.")] = "",
    startup: Annotated[int, typer.Option(help="Start order, low first.")] = 0,
    maintenance: Annotated[str, typer.Option(
        help="On host maintenance: migrate, stay or stop.")] = "migrate",
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    balance: Annotated[bool, typer.Option(
        "--balance/--no-balance",
        help="Whether the load balancer may move it (maintenance and HA still may).")] = True,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a VM (its disks are made by the host's agent)."""
    api = connect()
    body = {
        "vmid": vmid, "name": name, "memory_mb": memory, "cores": cores, "disks": disk or [],
        "node": node, "image": None if image.lower() == "none" else image, "startup": startup,
        "append": append, "maintenance": maintenance, "description": description,
        "balance": balance,
    }
    reply: dict[str, Any] = api.post("/vms", body)
    where = reply.get("node", node)
    if not no_wait and not as_json:
        typer.echo(f"VM {reply['vmid']} ({name}) queued on {where}: task {reply['task']}")
    _finish(api, reply, f"VM {reply['vmid']} ({name}) created on {where}", no_wait, as_json)


@app.command("set")
def set_config(
    vmid: VmidArg,
    balance: Annotated[bool | None, typer.Option(
        "--balance/--no-balance",
        help="Whether the load balancer may move it (maintenance and HA still may).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change settings of a VM that need no restart; those not given stay."""
    change = {k: v for k, v in {"balance": balance}.items() if v is not None}
    if not change:
        raise typer.BadParameter("nothing to change: give --balance or --no-balance")
    vm: dict[str, Any] = connect().patch(f"/vms/{vmid}/config", change)
    if as_json:
        print_json(vm)
    else:
        typer.echo(f"VM {vmid}: balance {_balance(vm['balance'])}")


def _action(action: str, vmid: int, no_wait: bool, as_json: bool, body: Any = None) -> None:
    api = connect()
    reply: dict[str, Any] = api.post(f"/vms/{vmid}/status/{action}", body)
    _finish(api, reply, f"VM {vmid}: {action} done", no_wait, as_json)


@app.command()
def start(vmid: VmidArg, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Start a VM."""
    _action("start", vmid, no_wait, as_json)


@app.command()
def stop(vmid: VmidArg, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Stop a VM at once (pull the plug)."""
    _action("stop", vmid, no_wait, as_json)


@app.command()
def shutdown(
    vmid: VmidArg,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the guest before stopping it hard.")
    ] = 180.0,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Ask the guest to power off (ACPI), stopping it hard after the timeout."""
    _action("shutdown", vmid, no_wait, as_json, {"timeout": timeout})


@app.command()
def suspend(vmid: VmidArg, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Pause a running VM."""
    _action("suspend", vmid, no_wait, as_json)


@app.command()
def resume(vmid: VmidArg, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Resume a paused VM."""
    _action("resume", vmid, no_wait, as_json)


@app.command()
def reset(vmid: VmidArg, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Reset a VM (hard reboot)."""
    _action("reset", vmid, no_wait, as_json)


@app.command()
def delete(
    vmid: VmidArg,
    force: Annotated[bool, typer.Option(help="Stop the VM first if it runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete a VM and its disks."""
    api = connect()
    vm: dict[str, Any] = api.get(f"/vms/{vmid}")  # a typo'd id fails before the prompt
    if not yes:
        typer.confirm(
            f"Delete VM {vmid} ({vm['name']}) and its disks {_disks(vm['disks'])}?", abort=True
        )
    reply: dict[str, Any] = api.delete(f"/vms/{vmid}", force=str(force).lower())
    _finish(api, reply, f"VM {vmid} deleted", no_wait, as_json)


@app.command()
def console(
    vmid: VmidArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output.")
    ] = False,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i",
                           help="Attach this terminal: output streams, keys go to the guest; "
                                "leave with Ctrl-].")
    ] = False,
) -> None:
    """Print the VM's serial console output, or attach to it (--interactive)."""
    api = connect()
    if interactive:
        from corral.cli.serial_console import attach

        raise typer.Exit(attach(api.url, api.token, api.verify, vmid))
    offset = 0
    try:
        while True:
            chunk: dict[str, Any] = api.get(f"/vms/{vmid}/console", offset=offset)
            sys.stdout.write(chunk["data"])
            sys.stdout.flush()
            offset = int(chunk["offset"])
            if not follow:
                return
            time.sleep(CONSOLE_POLL_SECONDS)
    except KeyboardInterrupt:
        return


app.command("migrate")(migrate_command)


@app.command("usage")
def vm_usage(vmid: VmidArg, range_: usage.RangeOpt = usage.Range.hour,
             as_json: JsonOpt = False) -> None:
    """A VM's usage history, as the host it is on keeps it (it starts anew on each host)."""
    usage.show(f"/vms/{vmid}/usage", range_, as_json)
