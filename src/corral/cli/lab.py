"""`corral lab up|down|status|destroy`: a whole cluster on one machine."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape

from corral.cli.client import fail
from corral.cli.output import err, print_json, table
from corral.lab.defaults import DEFAULT_LEASE_TTL, DEFAULT_NODES, DEFAULT_WATCHDOG_TIMEOUT

# The lab's modules (etcd, host configs, the cluster's setup) are imported by the commands
# that use them: every other command of the CLI starts without them.
if TYPE_CHECKING:
    from corral.lab.layout import LabLayout

T = TypeVar("T")

app = typer.Typer(help="A whole cluster on one machine.", no_args_is_help=True)

DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help="Lab directory [default: $CORRAL_LAB_DIR or /var/lib/corral/lab]."),
]


def _layout_or_none(given: Path | None) -> LabLayout | None:
    from corral.lab import control
    from corral.lab.layout import LabLayout

    root = control.lab_dir(given)
    try:
        return LabLayout.load(root)
    except (ValueError, KeyError) as e:
        fail(f"{root}/lab.json is unreadable: {e}")


def _plan(given: Path | None, nodes: int | None, api_port: int | None, base_port: int | None,
          accel: str | None, use_netns: bool | None = None, lease_ttl: int | None = None,
          watchdog_timeout: float | None = None, cluster: bool | None = None,
          witness: bool | None = None) -> LabLayout:
    """The layout for `up`: the saved one, changed only where an option was given. A new lab
    lives in network namespaces when it can (root)."""
    from corral.lab import control, netns
    from corral.lab.layout import LabLayout

    root = control.lab_dir(given)
    saved = _layout_or_none(given)
    if use_netns and not netns.available():
        fail("--netns needs root and the `ip` tool (iproute2)")
    if saved is None and use_netns is None:
        use_netns = netns.available()
    if saved is None and cluster is None:
        cluster = True  # a new lab is built as a real cluster is
    try:
        layout = (saved or LabLayout(root, images_dir=control.DEFAULT_IMAGES_DIR)).with_options(
            nodes=nodes, api_port=api_port, base_port=base_port, accel=accel,
            images_dir=control.images_dir_from_env(), netns=use_netns, lease_ttl=lease_ttl,
            watchdog_timeout=watchdog_timeout, cluster_mode=cluster, witness=witness,
        )
    except ValueError as e:
        fail(str(e))
    if saved and control.etcd_initialised(saved) and (
        (layout.nodes, layout.base_port, layout.netns, layout.cluster_mode, layout.witness)
        != (saved.nodes, saved.base_port, saved.netns, saved.cluster_mode, saved.witness)
    ):
        # etcd keeps its membership (names and peer URLs) in its data.
        fail(f"the lab in {root} was made with {saved.nodes} nodes on base port "
             f"{saved.base_port}, {'in' if saved.netns else 'without'} network namespaces"
             f"{', built by cluster create/join' if saved.cluster_mode else ''}"
             f"{' with a witness' if saved.witness else ''}; "
             "`corral lab destroy` it first to change any of these")
    if layout.netns and not netns.available():
        fail(f"the lab in {root} lives in network namespaces, which need root")
    return layout


def _build_image(layout: LabLayout) -> None:
    from corral.image.tiny import build_tiny

    console = err()
    with console.status(f"building the tiny guest image in {layout.images_dir}"):
        try:
            build_tiny(layout.images_dir, log=lambda line: console.print(f"  [dim]{escape(line)}"))
        except Exception as e:  # any build failure ends `up` with its reason
            fail(f"building the tiny guest image failed: {e}")


@app.command()
def up(
    nodes: Annotated[int | None, typer.Option(
        help=f"Simulated hosts [default: {DEFAULT_NODES}, or the existing lab's].")] = None,
    vms: Annotated[int, typer.Option(min=0, help="Tiny VMs created on a fresh lab.")] = 3,
    dir: DirOpt = None,
    api_port: Annotated[int | None, typer.Option(help="API port [default: 8470].")] = None,
    base_port: Annotated[int | None, typer.Option(
        help="etcd client base+i, peer base+100+i, agent base+200+i [default: 23800].")] = None,
    accel: Annotated[str | None, typer.Option(help="auto, tcg or kvm [default: auto].")] = None,
    use_netns: Annotated[bool | None, typer.Option(
        "--netns/--no-netns",
        help="One network namespace per host [default: yes as root, for a new lab].")] = None,
    lease_ttl: Annotated[int | None, typer.Option(
        min=2, help=f"Host lease TTL in seconds [default: {DEFAULT_LEASE_TTL}].")] = None,
    watchdog_timeout: Annotated[float | None, typer.Option(
        min=0.0, help="Seconds before an unfed host watchdog kills the host's VMs; 0: none "
                      f"[default: {DEFAULT_WATCHDOG_TIMEOUT:g}].")] = None,
    cluster: Annotated[bool | None, typer.Option(
        "--cluster/--no-cluster",
        help="Build the hosts with `corral cluster create` and `join` (TLS, etcd auth, each "
             "host its own API), as real hosts are; --no-cluster: the lab wires its hosts "
             "itself, plain HTTP [default: yes, or the existing lab's].")] = None,
    witness: Annotated[bool | None, typer.Option(
        "--witness/--no-witness",
        help="In a cluster lab (the default): one more machine, `w`, set up with `corral "
             "witness setup` as the cluster's quorum witness (an etcd voter, no VMs) "
             "[default: no, or the existing lab's].")] = None,
) -> None:
    """Start the lab: etcd members, agents, the API, and on a fresh lab a few tiny VMs."""
    from corral.lab import cluster_build, control, netns
    from corral.lab.bringup import LabApi, LabError, wait_supervisor

    layout = _plan(dir, nodes, api_port, base_port, accel, use_netns, lease_ttl,
                   watchdog_timeout, cluster, witness)
    if (pid := control.supervisor_pid(layout)) is not None:
        fail(f"the lab in {layout.root} is already up (supervisor pid {pid}); "
             "see `corral lab status`, or `corral lab down` first")
    if busy := control.busy_ports(layout):
        fail(f"ports in use: {', '.join(map(str, busy))}; another lab or service holds them "
             "(choose --base-port / --api-port)")
    if layout.netns:
        try:
            netns.check_free(layout)
        except RuntimeError as e:
            fail(str(e))
    _build_image(layout)
    layout.save()
    console = err()
    proc = control.start_supervisor(layout)
    api: LabApi | None = None
    try:
        with console.status("starting the lab") as spinner:
            def say(text: str) -> None:
                spinner.update(text)

            wait_supervisor(layout, proc, say)
            if layout.cluster_mode and not cluster_build.built(layout):
                cluster_build.build(layout, say)
                console.print(f"[green]✓[/] cluster built: create on n1, "
                              f"{layout.nodes - 1} joins"
                              + (", witness setup on w" if layout.witness else ""))
            token = layout.token_path.read_text().strip()
            api = LabApi(layout, token)
            api.wait_healthy(say)
            api.wait_nodes(say)
            console.print(f"[green]✓[/] {layout.nodes} hosts online")
            if not layout.vms_seeded:
                if vms and not api.call("GET", "/vms"):
                    names = api.create_demo_vms(vms, say)
                    console.print(f"[green]✓[/] VMs running: {', '.join(names)}")
                layout = layout.with_options(vms_seeded=True)
                layout.save()
    except (LabError, cluster_build.BuildError) as e:
        fail(f"{e}\nthe lab is left as it is for a look; `corral lab down` stops it")
    finally:
        if api is not None:
            api.close()
    config = _write_client_config(layout.api_url, token, layout.ca_file,
                                  layout.other_api_urls)
    typer.echo(f"lab up in {layout.root}\n  API:   {layout.api_url}\n  token: {token}"
               f"\n  console: {layout.api_url}/ (sign in with the token)"
               + (f"\n  client config: {config}" if config else ""))


def _write_client_config(url: str, token: str, ca: Path | None,
                         others: list[str]) -> Path | None:
    try:
        from corral.cli.client import write_client_config
    except ImportError:
        return None
    return write_client_config(url, token, ca=ca, others=others)


@app.command()
def down(dir: DirOpt = None) -> None:
    """Stop the lab: API, agents, every VM of its hosts, etcd. Data stays."""
    from corral.lab import control

    layout = _layout_or_none(dir)
    if layout is None:
        typer.echo(f"no lab in {control.lab_dir(dir)}: nothing to stop")
        return
    with err().status("stopping the lab"):
        report = control.down(layout)
    if not report.was_running and not report.forced:
        typer.echo(f"the lab in {layout.root} is not running")
        return
    if report.was_running:
        typer.echo(f"stopped: {', '.join(report.stopped) or 'supervisor'}"
                    + (f"; {len(report.qemu)} QEMU process(es)" if report.qemu else ""))
    if report.forced:
        typer.echo(f"killed leftover lab processes: {', '.join(map(str, report.forced))}")


@app.command()
def status(
    dir: DirOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each lab process with its pid, liveness and restarts; the API URL."""
    from corral.lab import control, faults

    layout = _layout_or_none(dir)
    if layout is None:
        if json:
            print_json({"dir": str(control.lab_dir(dir)), "running": False, "exists": False})
            return
        fail(f"no lab in {control.lab_dir(dir)} (`corral lab up` makes one)")
    st = control.status(layout)
    if json:
        print_json({**st.to_json(), "exists": True})
        return
    if not st.running:
        typer.echo(f"the lab in {layout.root} is down")
        if st.leftovers:
            typer.echo(f"leftover lab processes: {', '.join(map(str, st.leftovers))}"
                        " (`corral lab down` stops them)")
        return
    table(["process", "role", "pid", "alive", "restarts"],
          [[p.name, p.role, p.pid or "-", p.alive, p.restarts] for p in st.processes],
          title=f"lab {layout.root} (supervisor {st.supervisor}, {st.stage})")
    typer.echo(f"API: {st.url}")
    if layout.netns:
        typer.echo(f"network: {layout.subnet_prefix}.0/24 on bridge {layout.bridge}, hosts in "
                   f"namespaces {layout.netns_name(1)}..")
    if (w := layout.witness_index) is not None:
        where = f" in namespace {layout.netns_name(w)}" if layout.netns else ""
        typer.echo(f"witness: {layout.machine_name(w)} at {layout.host_address(w)}{where} "
                   "(an etcd voter, no VMs)")
    off = [n for i, n in enumerate(layout.machine_names, 1) if layout.power_marker(i).exists()]
    if off:
        typer.echo(f"powered off: {', '.join(off)}")
    if cut := faults.partitioned(layout):
        typer.echo(f"partitioned: {', '.join(cut)}")


@app.command()
def destroy(
    dir: DirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Stop the lab and delete its directory: etcd data, VMs' disks, logs."""
    from corral.lab import control

    layout = _layout_or_none(dir)
    if layout is None:
        # Only a directory holding a lab.json is ever deleted.
        fail(f"no lab in {control.lab_dir(dir)}: nothing to destroy")
    if not yes:
        typer.confirm(f"Stop the lab and delete {layout.root} with all its VMs?", abort=True)
    control.down(layout)
    shutil.rmtree(layout.root)
    typer.echo(f"destroyed the lab in {layout.root}")


# --- fault injection ---------------------------------------------------------------------

NodeArg = Annotated[str, typer.Argument(help="The host, e.g. n2.")]
MachineArg = Annotated[str, typer.Argument(help="The host, e.g. n2, or the witness, w.")]


def _running_layout(given: Path | None) -> LabLayout:
    from corral.lab import control

    layout = _layout_or_none(given)
    if layout is None:
        fail(f"no lab in {control.lab_dir(given)} (`corral lab up` makes one)")
    return layout


def _node(layout: LabLayout, node: str) -> str:
    try:
        layout.node_index(node)
    except ValueError as e:
        fail(str(e))
    return node


def _machine(layout: LabLayout, name: str) -> str:
    """A host or the witness: power and network faults apply to either."""
    try:
        layout.machine_index(name)
    except ValueError as e:
        fail(str(e))
    return name


def _inject(dir: Path | None, fault: Callable[[LabLayout], T]) -> tuple[LabLayout, T]:
    """Run a fault on a running lab; a refusal becomes the command's one-line error."""
    from corral.lab import faults

    layout = _running_layout(dir)
    try:
        return layout, fault(layout)
    except (faults.FaultError, RuntimeError) as e:
        fail(str(e))


@app.command("kill-node")
def kill_node(node: MachineArg, dir: DirOpt = None) -> None:
    """Power loss: SIGKILL the host's agent, watchdog, etcd member and VMs (the witness's etcd
    member) at once; it stays down until `corral lab start-node`."""
    from corral.lab import faults

    _, killed = _inject(dir, lambda lay: faults.kill_node(lay, _machine(lay, node)))
    parts = [f"{n} ({p})" for n, p in killed.processes.items()]
    parts += [f"VM {v} ({p})" for v, p in killed.qemu.items()]
    typer.echo(f"{node} powered off; killed {', '.join(parts) or 'nothing (it was down)'}")


@app.command("shutdown-node")
def shutdown_node(
    node: NodeArg,
    reboot: Annotated[bool, typer.Option("--reboot", help="A reboot, not a power-off.")] = False,
    back: Annotated[float, typer.Option(help="With --reboot: seconds until it is on again.")]
    = 5.0,
    timeout: Annotated[float, typer.Option(help="Seconds the agent gets to finish.")] = 420.0,
    dir: DirOpt = None,
) -> None:
    """A clean shutdown of the host: its agent carries out the cluster's shutdown policy
    (`corral ha config`), then the host powers off (a reboot powers it on again)."""
    from corral.lab import faults

    kind = "reboot" if reboot else "poweroff"
    layout, done = _inject(dir, lambda lay: faults.shutdown_node(lay, _node(lay, node), kind,
                                                                  timeout))
    left = (f"; killed VM(s) still running: {', '.join(map(str, done.qemu_left))}"
            if done.qemu_left else "")
    typer.echo(f"{node}: agent finished in {done.agent_seconds:.1f}s; powered off{left}")
    if reboot:
        time.sleep(back)
        _, running = _inject(dir, lambda lay: faults.start_node(lay, node))
        typer.echo(f"{node} powered on: " + ", ".join(f"{n} ({p})" for n, p in running.items()))


@app.command("start-node")
def start_node(node: MachineArg, dir: DirOpt = None) -> None:
    """Power a killed host (or witness) on again: the supervisor starts its processes."""
    from corral.lab import faults

    _, running = _inject(dir, lambda lay: faults.start_node(lay, _machine(lay, node)))
    typer.echo(f"{node} powered on: " + ", ".join(f"{n} ({p})" for n, p in running.items()))


@app.command("freeze-agent")
def freeze_agent(node: NodeArg, dir: DirOpt = None) -> None:
    """SIGSTOP the host's agent: its watchdog fences the host's VMs after its timeout."""
    from corral.lab import faults

    layout, pid = _inject(dir, lambda lay: faults.freeze_agent(lay, _node(lay, node)))
    dog = (f"its watchdog fences in {layout.watchdog_timeout:g}s" if layout.watchdog_timeout
           else "this lab runs without watchdogs")
    typer.echo(f"froze the agent of {node} (pid {pid}); {dog}")


@app.command("thaw-agent")
def thaw_agent(node: NodeArg, dir: DirOpt = None) -> None:
    """SIGCONT the host's agent."""
    from corral.lab import faults

    _, pid = _inject(dir, lambda lay: faults.thaw_agent(lay, _node(lay, node)))
    typer.echo(f"thawed the agent of {node} (pid {pid})")


@app.command("kill-etcd-leader")
def kill_etcd_leader(dir: DirOpt = None) -> None:
    """SIGKILL the leading etcd member: the others elect a new leader, the supervisor
    restarts the killed one."""
    from corral.lab import faults

    _, (node, pid) = _inject(dir, faults.kill_etcd_leader)
    typer.echo(f"killed the etcd leader, {node}-etcd (pid {pid})")


class Cut(StrEnum):
    etcd = "etcd"
    peers = "peers"


@app.command()
def partition(
    node: MachineArg,
    only: Annotated[Cut | None, typer.Option(
        help="Cut only this: 'etcd' (the other etcd members; the host still reaches its "
             "peers and they it) or 'peers' (everything but etcd).")] = None,
    dir: DirOpt = None,
) -> None:
    """Cut the host's (or the witness's) network, or a part of it (needs a lab in network
    namespaces)."""
    from corral.lab import faults

    what = only.value if only else None
    layout, _ = _inject(dir, lambda lay: faults.partition(lay, _machine(lay, node), what))
    if what == "etcd":
        typer.echo(f"{node} is cut off from the other etcd members (its peers still reach it)")
    elif what == "peers":
        typer.echo(f"{node} is cut off from everything but etcd")
    else:
        typer.echo(f"{node} is cut off ({layout.veth(layout.machine_index(node))} down)")


@app.command()
def heal(
    node: Annotated[str | None, typer.Argument(
        help="The host or the witness [default: all].")] = None,
    dir: DirOpt = None,
) -> None:
    """Restore the network of one partitioned host (or the witness), or of all."""
    from corral.lab import faults

    _, healed = _inject(dir, lambda lay: faults.heal(lay, _machine(lay, node) if node else None))
    typer.echo(f"reconnected: {', '.join(healed)}" if healed else "no host was cut off")
