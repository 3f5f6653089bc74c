"""Network namespaces for a lab's machines (as root): one namespace per host and for the
witness, a veth pair from each to a bridge in the root namespace, addresses from the lab's /24
in 198.18.0.0/15.

    root namespace                         corral-<id>-n<i>  (the witness: corral-<id>-w)
    bridge crl<id> 198.18.x.254/24 ──── crl<id>n<i> ═══ eth0 198.18.x.<i>/24, lo

No default route inside the namespaces and no forwarding out of the bridge: traffic stays on
this machine. A partition is the host's veth (root end) set down.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from corral.lab.layout import LabLayout

Command = list[str]
NETNS_DIR = Path("/run/netns")


def available() -> bool:
    """Namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and the `ip` tool."""
    return os.geteuid() == 0 and any(
        Path(d, "ip").exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
    )


def exec_prefix(layout: LabLayout, i: int) -> tuple[str, ...]:
    """Prepended to a host's commands: `ip netns exec` execs the command itself, so the pid
    the supervisor sees is the command's, and QEMU started by the agent inherits the netns."""
    return ("ip", "netns", "exec", layout.netns_name(i)) if layout.netns else ()


def plan_up(layout: LabLayout) -> list[Command]:
    cmds: list[Command] = [
        ["ip", "link", "add", layout.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{layout.bridge_address}/24", "dev", layout.bridge],
        # The bridge names its lab: another lab that drew the same /24 is told whose it is.
        ["ip", "link", "set", layout.bridge, "alias", str(layout.root)],
        ["ip", "link", "set", layout.bridge, "up"],
    ]
    for i in range(1, layout.machines + 1):
        ns, veth = layout.netns_name(i), layout.veth(i)
        cmds += [
            ["ip", "netns", "add", ns],
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
            ["ip", "link", "set", veth, "master", layout.bridge, "up"],
            ["ip", "-n", ns, "link", "set", "lo", "up"],
            ["ip", "-n", ns, "addr", "add", f"{layout.host_address(i)}/24", "dev", "eth0"],
            ["ip", "-n", ns, "link", "set", "eth0", "up"],
        ]
    return cmds


def plan_down(layout: LabLayout) -> list[Command]:
    """Deleting the root end of a veth deletes the pair even if a process still holds the
    namespace; each step may fail on its own (already gone) without stopping the others."""
    cmds: list[Command] = []
    for i in range(1, layout.machines + 1):
        cmds += [["ip", "link", "del", layout.veth(i)],
                 ["ip", "netns", "del", layout.netns_name(i)]]
    cmds.append(["ip", "link", "del", layout.bridge])
    return cmds


def _run(cmd: Sequence[str], check: bool) -> bool:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.returncode}")
    return proc.returncode == 0


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def exists(layout: LabLayout) -> bool:
    """Anything of this lab's network left over (bridge, a veth, a namespace)?"""
    return link_exists(layout.bridge) or any(
        link_exists(layout.veth(i)) or (NETNS_DIR / layout.netns_name(i)).exists()
        for i in range(1, layout.machines + 1)
    )


def owner(layout: LabLayout) -> str | None:
    """The lab dir that holds this lab's bridge, or None when there is no bridge."""
    try:
        return Path("/sys/class/net", layout.bridge, "ifalias").read_text().strip()
    except OSError:
        return None


def check_free(layout: LabLayout) -> None:
    held_by = owner(layout)
    if held_by is not None and held_by != str(layout.root):
        raise RuntimeError(f"the lab network {layout.subnet_prefix}.0/24 (bridge {layout.bridge}) "
                           f"belongs to the lab in {held_by}; choose another --base-port")


def up(layout: LabLayout) -> None:
    """Create the lab's network afresh (whatever a crashed lab left is removed first)."""
    check_free(layout)
    down(layout)
    for cmd in plan_up(layout):
        _run(cmd, check=True)


def down(layout: LabLayout) -> None:
    if not exists(layout) or owner(layout) not in (None, str(layout.root)):
        return
    for cmd in plan_down(layout):
        _run(cmd, check=False)


def set_link(layout: LabLayout, i: int, connected: bool) -> None:
    """Cut (or restore) machine i's only link: to the other hosts, the API and everyone."""
    _run(["ip", "link", "set", layout.veth(i), "up" if connected else "down"], check=True)


# Partial cuts: policy routing in the machine's namespace sends the traffic to cut to a table
# that blackholes the lab's /24. Fixed rule priorities, so a cut is found and undone by them.
CUT_TABLE = "100"
ETCD_CUT = 100  # rules 100..103: etcd's client and peer ports, both ways
PEERS_CUT = 90  # rules 90..93 keep etcd's ports; rule 94 cuts the rest of the lab network
CUTS = ("etcd", "peers")
# TCP by number: iproute2 looks a protocol's name up in /etc/protocols, which a minimal Debian
# lacks (it comes with netbase), and there `ipproto tcp` is refused.
IPPROTO_TCP = "6"


def etcd_port_ranges(layout: LabLayout) -> list[str]:
    """The client ports and the peer ports of the lab's etcd members (each a range)."""
    first, last = layout.etcd_member(1), layout.etcd_member(layout.machines)
    return [f"{first.client_port}-{last.client_port}", f"{first.peer_port}-{last.peer_port}"]


def plan_cut(layout: LabLayout, i: int, only: str) -> list[Command]:
    """Cut machine i from the other machines' etcd members only ("etcd": its own member then
    has no quorum, its agent can reach nothing but that member, and everything else flows),
    or from everything but etcd ("peers": agents, migrations and the API's relays)."""
    if only not in CUTS:
        raise ValueError(f"a partial cut is one of {', '.join(CUTS)}, not {only!r}")
    ip = ["ip", "-n", layout.netns_name(i)]
    lab_net = f"{layout.subnet_prefix}.0/24"
    cmds = [[*ip, "route", "add", "blackhole", lab_net, "table", CUT_TABLE]]
    first, table = (ETCD_CUT, CUT_TABLE) if only == "etcd" else (PEERS_CUT, "main")
    ports = [(way, r) for way in ("dport", "sport") for r in etcd_port_ranges(layout)]
    for k, (way, r) in enumerate(ports):
        cmds.append([*ip, "rule", "add", "priority", str(first + k), "ipproto", IPPROTO_TCP,
                     way, r, "table", table])
    if only == "peers":
        cmds.append([*ip, "rule", "add", "priority", str(PEERS_CUT + len(ports)), "to",
                     lab_net, "table", CUT_TABLE])
    return cmds


def plan_uncut(layout: LabLayout, i: int) -> list[Command]:
    """Undo either partial cut (each step may fail: that rule is not there)."""
    ip = ["ip", "-n", layout.netns_name(i)]
    prios = [*range(ETCD_CUT, ETCD_CUT + 4), *range(PEERS_CUT, PEERS_CUT + 5)]
    return [[*ip, "rule", "del", "priority", str(p)] for p in prios] + [
        [*ip, "route", "flush", "table", CUT_TABLE]]


def cut(layout: LabLayout, i: int, only: str) -> None:
    uncut(layout, i)  # one cut at a time
    for cmd in plan_cut(layout, i, only):
        _run(cmd, check=True)


def uncut(layout: LabLayout, i: int) -> None:
    for cmd in plan_uncut(layout, i):
        _run(cmd, check=False)


def partial_cut(layout: LabLayout, i: int) -> str | None:
    """Which partial cut machine i is under, if any."""
    proc = subprocess.run(["ip", "-n", layout.netns_name(i), "rule", "show"],
                          capture_output=True, text=True, timeout=10)
    prios = {line.split(":", 1)[0] for line in proc.stdout.splitlines()}
    if str(ETCD_CUT) in prios:
        return "etcd"
    return "peers" if str(PEERS_CUT) in prios else None


def is_connected(layout: LabLayout, i: int) -> bool:
    try:
        flags = int(Path("/sys/class/net", layout.veth(i), "flags").read_text(), 16)
    except (OSError, ValueError):
        return False
    return bool(flags & 0x1)  # IFF_UP
