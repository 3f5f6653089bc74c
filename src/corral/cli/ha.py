"""`corral ha ...`: HA resources, rules and status."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from corral.cli.client import connect, fail
from corral.cli.options import JsonOpt
from corral.cli.output import print_json, table

app = typer.Typer(help="High availability: resources, rules, status.", no_args_is_help=True)
rule_app = typer.Typer(help="HA placement rules.", no_args_is_help=True)
app.add_typer(rule_app, name="rule")

VmidArg = Annotated[int, typer.Argument(help="VM id.")]
StateOpt = Annotated[str | None, typer.Option(
    "--state", help="started, stopped, disabled or ignored.")]
RestartOpt = Annotated[int | None, typer.Option("--max-restart", help="Restarts in place.")]
RelocateOpt = Annotated[int | None, typer.Option("--max-relocate", help="Moves to other hosts.")]


def _body(state: str | None, max_restart: int | None, max_relocate: int | None
          ) -> dict[str, Any]:
    body = {"state": state, "max_restart": max_restart, "max_relocate": max_relocate}
    return {k: v for k, v in body.items() if v is not None}


@app.command()
def add(vmid: VmidArg, state: StateOpt = None, max_restart: RestartOpt = None,
        max_relocate: RelocateOpt = None) -> None:
    """Put a VM under HA."""
    s = connect().post("/ha/resources", {"vmid": vmid, **_body(state, max_restart,
                                                                max_relocate)})
    typer.echo(f"VM {vmid} is managed by HA (state {s['state']})")


@app.command("set")
def set_(vmid: VmidArg, state: StateOpt = None, max_restart: RestartOpt = None,
         max_relocate: RelocateOpt = None) -> None:
    """Change a VM's HA settings (from `error`: set disabled, then started)."""
    body = _body(state, max_restart, max_relocate)
    if not body:
        fail("nothing to change: give --state, --max-restart or --max-relocate")
    s = connect().request("PUT", f"/ha/resources/{vmid}", json=body)
    typer.echo(f"VM {vmid}: state {s['state']}, max-restart {s['max_restart']}, "
               f"max-relocate {s['max_relocate']}")


@app.command()
def remove(vmid: VmidArg) -> None:
    """Take a VM out of HA (the VM itself stays as it is)."""
    connect().request("DELETE", f"/ha/resources/{vmid}")
    typer.echo(f"VM {vmid} is no longer managed by HA")


@app.command("confirm-fenced")
def confirm_fenced(
    node: Annotated[str, typer.Argument(help="The host that is powered off.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Confirm a lost host is powered off, so its HA VMs are recovered at once.

    The last resort for a host without a watchdog or a fence agent: if the host still runs,
    its VMs will run twice and their disks may be damaged.
    """
    if not yes:
        typer.confirm(f"Is {node} really powered off? Its HA VMs will start elsewhere now; "
                      "if it still runs them, they run twice", abort=True)
    connect().post(f"/ha/fenced/{node}", {})
    typer.echo(f"{node} confirmed powered off: its HA VMs are recovered now")


POLICIES = "freeze, failover, migrate or conditional (freeze on a reboot, failover on a " \
    "power-off)"


@app.command()
def config(
    shutdown_policy: Annotated[str | None, typer.Option(
        "--shutdown-policy", help=f"What a clean host shutdown does with its VMs: {POLICIES}.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the cluster's HA settings, or change them."""
    client = connect()
    if shutdown_policy is not None:
        c = client.request("PUT", "/ha/config", json={"shutdown_policy": shutdown_policy})
    else:
        c = client.get("/ha/config")
    if as_json:
        print_json(c)
        return
    typer.echo(f"shutdown policy: {c['shutdown_policy']}")


def fence_time(seconds: float | None) -> str:
    """A host's published fence time: at most this long after its agent's last feed, the
    host's watchdog has fenced it."""
    if seconds is None:
        return "unknown"
    return f"{seconds:g}s" if seconds > 0 else "none: unfenceable"


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """HA status of every HA VM and host, with the reason of each state."""
    report: dict[str, Any] = connect().get("/ha/status")
    if as_json:
        print_json(report)
        return
    table(["NODE", "HA", "FENCE TIME", "REASON"],
          [[n["node"], n["status"], fence_time(n.get("fence_time")), n["reason"] or ""]
           for n in report["nodes"]])
    typer.echo("")
    table(["VMID", "NAME", "REQUESTED", "STATUS", "NODE", "RESTARTS", "RELOCATES", "REASON"],
          [[v["vmid"], v["name"] or "-", v["requested"], v["status"], v["node"] or "-",
            f"{v['restarts']}/{v['max_restart']}", f"{v['relocates']}/{v['max_relocate']}",
            v["reason"]] for v in report["vms"]])
    if report["unprotected"]:
        typer.echo("")
        table(["VMID (no HA)", "NODE", "STATUS"],
              [[u["vmid"], u["node"], u["status"]] for u in report["unprotected"]])
    if report.get("skipped"):
        typer.echo("")
        typer.echo("Records that do not decode (left out; everything else carries on):")
        table(["KEY", "PROBLEM"], [[r["key"], r["problem"]] for r in report["skipped"]])


def _ids(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        fail(f"'{text}' is not a comma-separated list of VM ids")


def _nodes(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, prio = part.partition(":")
        try:
            out[name] = int(prio or "1")
        except ValueError:
            fail(f"'{part}': a priority is a number (node:priority)")
    return out


@rule_app.command("add")
def rule_add(
    name: Annotated[str, typer.Argument(help="Rule name.")],
    anti_affinity: Annotated[str | None, typer.Option(
        "--anti-affinity", help="VM ids to keep on different hosts: 101,102.")] = None,
    together: Annotated[str | None, typer.Option(
        "--together", help="VM ids to keep on one host: 101,102.")] = None,
    nodes: Annotated[str | None, typer.Option(
        "--nodes", help="Preferred hosts with priorities: n1:2,n2:1.")] = None,
    vms: Annotated[str | None, typer.Option("--vms", help="VMs the preference applies to.")
                   ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Only the listed hosts.")] = False,
    failback: Annotated[bool, typer.Option(
        "--failback/--no-failback",
        help="Move a VM back (live, once) when a preferred host returns and stays online.")
    ] = True,
) -> None:
    """Add an anti-affinity, affinity (--together) or node-preference rule."""
    if sum(x is not None for x in (anti_affinity, together, nodes)) != 1:
        fail("give one of --anti-affinity, --together or --nodes")
    if anti_affinity is not None:
        body: dict[str, Any] = {"name": name, "kind": "anti-affinity",
                                "vms": _ids(anti_affinity)}
    elif together is not None:
        body = {"name": name, "kind": "affinity", "vms": _ids(together)}
    else:
        if not vms:
            fail("--nodes needs --vms: the VMs the preference applies to")
        body = {"name": name, "kind": "node-preference", "nodes": _nodes(nodes or ""),
                "vms": _ids(vms), "strict": strict, "failback": failback}
    connect().post("/ha/rules", body)
    typer.echo(f"rule {name} added")


@rule_app.command("list")
def rule_list(as_json: JsonOpt = False) -> None:
    """List HA rules."""
    rules: list[dict[str, Any]] = connect().get("/ha/rules")
    if as_json:
        print_json(rules)
        return
    table(["NAME", "KIND", "VMS", "NODES", "STRICT", "FAILBACK"],
          [[r["name"], r["kind"], ",".join(map(str, r["vms"])),
            ",".join(f"{n}:{p}" for n, p in r["nodes"].items()) or "-", r["strict"],
            r.get("failback", True) if r["kind"] == "node-preference" else "-"]
           for r in rules])


@rule_app.command("remove")
def rule_remove(name: Annotated[str, typer.Argument(help="Rule name.")]) -> None:
    """Remove an HA rule."""
    connect().request("DELETE", f"/ha/rules/{name}")
    typer.echo(f"rule {name} removed")
