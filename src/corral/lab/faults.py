"""Fault injection on a running lab: power loss, a frozen agent, a network partition.

Each function acts at once and returns what it did; `corral lab` (corral.cli.lab) prints it.
A host's processes are the supervisor's children of that host, whether from the lab's own plan
or, in cluster mode, from the host's control file (named alike: n1-etcd, n1-agent, ...).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from corral.agent.settings import HOST_SHUTDOWN_MARKER
from corral.cluster.members import endpoint_status
from corral.fencing.labdog import host_qemu_pids, kill_launched
from corral.host import config as host_config
from corral.host.processes import pid_alive
from corral.lab import control, netns, procs
from corral.lab.etcd import MemberStatus, member_status
from corral.lab.layout import LabLayout
from corral.pki.files import TLSFiles

WAIT = 10.0  # bound on waiting for processes to die or come back


class FaultError(RuntimeError):
    pass


@dataclass
class Killed:
    node: str
    processes: dict[str, int] = field(default_factory=dict)  # child name -> pid
    qemu: dict[int, int] = field(default_factory=dict)  # vmid -> pid


def _running_state(layout: LabLayout) -> dict[str, Any]:
    if control.supervisor_pid(layout) is None:
        raise FaultError(f"the lab in {layout.root} is not running (`corral lab up`)")
    state = control.read_state(layout)
    if state is None:
        raise FaultError("the lab supervisor has not published its state yet; try again")
    return state


def _of_host(state: dict[str, Any], node: str) -> list[str]:
    """The names of the host's children, running or not (a supervisor of an older Corral
    published no hosts: its children are named after their host)."""
    children: dict[str, int | None] = state.get("children", {})
    hosts: dict[str, str | None] | None = state.get("hosts")
    if hosts is None:
        return [name for name in children if name.startswith(f"{node}-")]
    return [name for name in children if hosts.get(name) == node]


def host_children(layout: LabLayout, node: str) -> dict[str, int]:
    """The live processes of a host (etcd member, watchdog, agent, and in cluster mode its
    API): child name -> pid."""
    state = _running_state(layout)
    children: dict[str, int | None] = state.get("children", {})
    return {name: int(pid) for name in _of_host(state, node)
            if (pid := children.get(name)) and pid_alive(int(pid))}


def kill_node(layout: LabLayout, node: str) -> Killed:
    """Power loss: every process of the host (or the witness) dies by SIGKILL in one sweep,
    and the supervisor keeps it down (its power marker) until start_node."""
    i = layout.machine_index(node)
    _running_state(layout)
    # The marker first: the supervisor must never see these deaths as crashes to restart.
    layout.power_marker(i).write_text(f"{time.time():.3f}\n")
    report = Killed(node, host_children(layout, node), host_qemu_pids(layout.run_dir(i)))
    victims = [*report.processes.values(), *report.qemu.values()]
    procs.signal_all(victims, signal.SIGKILL)
    # Then a VM start the agent had in flight, whose daemon has no pidfile yet.
    victims += kill_launched(layout.run_dir(i))
    deadline = time.monotonic() + WAIT
    while any(pid_alive(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    return report


@dataclass
class ShutDown:
    node: str
    agent_seconds: float  # from SIGTERM to the agent's exit
    qemu_left: dict[int, int] = field(default_factory=dict)  # killed by the power-off


def shutdown_node(layout: LabLayout, node: str, kind: str, timeout: float) -> ShutDown:
    """A clean shutdown, as systemd does it: the agent is told the host goes down (its run
    dir marker stands in for systemd's shutdown job) and stopped with SIGTERM; once it has
    carried out the shutdown policy and exited, the host's other services stop and the host
    powers off (until start_node)."""
    i = layout.node_index(node)
    _running_state(layout)
    pid = agent_pid(layout, node)
    layout.shutdown_marker(i).write_text(f"{time.time():.3f}\n")
    (layout.run_dir(i) / HOST_SHUTDOWN_MARKER).write_text(kind)
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while pid_alive(pid) and time.monotonic() - began < timeout:
        time.sleep(0.1)
    took = time.monotonic() - began
    qemu = host_qemu_pids(layout.run_dir(i))
    # The rest of the host stops as systemd stops it: the watchdog mux, with no client
    # armed any more, closes its device cleanly; a QEMU left over dies with the power.
    others = [p for name, p in host_children(layout, node).items() if name != f"{node}-agent"]
    procs.terminate(others, grace=5.0)
    layout.power_marker(i).write_text(f"{time.time():.3f}\n")
    layout.shutdown_marker(i).unlink(missing_ok=True)
    procs.signal_all([*host_children(layout, node).values(), *qemu.values()], signal.SIGKILL)
    if pid_alive(pid):
        raise FaultError(f"the agent of {node} did not finish within {timeout:g}s: powered "
                         "off anyway")
    return ShutDown(node, took, qemu)


def start_node(layout: LabLayout, node: str) -> dict[str, int]:
    """Power on: the supervisor starts the host's (or the witness's) processes again; returns
    them once up."""
    i = layout.machine_index(node)
    _running_state(layout)
    marker = layout.power_marker(i)
    if not marker.exists():
        raise FaultError(f"{node} is not powered off")
    expected = set(_of_host(_running_state(layout), node))
    marker.unlink()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        running = host_children(layout, node)
        if set(running) >= expected:
            return running
        time.sleep(0.2)
    raise FaultError(f"{node} did not come back within {WAIT:.0f}s; see {layout.logs_dir}")


def agent_pid(layout: LabLayout, node: str) -> int:
    layout.node_index(node)
    pid = host_children(layout, node).get(f"{node}-agent")
    if pid is None:
        raise FaultError(f"the agent of {node} is not running")
    return pid


def freeze_agent(layout: LabLayout, node: str) -> int:
    """SIGSTOP the host's agent: it renews nothing and feeds nothing; its watchdog fences."""
    pid = agent_pid(layout, node)
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw_agent(layout: LabLayout, node: str) -> int:
    pid = agent_pid(layout, node)
    os.kill(pid, signal.SIGCONT)
    return pid


def leading_host(seen: dict[str, MemberStatus | None]) -> tuple[str, int] | None:
    """From what each host's member says (None: no answer), the host whose member leads and
    its raft term, once a majority of the members follow it in the newest term."""
    names = {s.member: name for name, s in seen.items() if s is not None}
    votes = Counter((s.leader, s.term) for s in seen.values() if s is not None)
    if not votes:
        return None
    (leader, term), count = max(votes.items(), key=lambda vote: vote[0][1])
    if count <= len(seen) // 2 or leader not in names:
        return None
    return names[leader], term


def _host_members(layout: LabLayout) -> dict[str, tuple[str, TLSFiles | None]]:
    """Cluster mode: each machine (host, witness) that has a host config (it created or
    joined the cluster) -> its member's client URL and the TLS files to ask it with (its
    own)."""
    out: dict[str, tuple[str, TLSFiles | None]] = {}
    for i, name in enumerate(layout.machine_names, start=1):
        path = layout.host_config_path(i)
        if not path.exists():
            continue
        try:
            config = host_config.load(path)
        except host_config.HostConfigError as e:
            raise FaultError(str(e)) from None
        tls = config.tls
        out[name] = (config.client_url,
                     TLSFiles(tls.ca_cert, tls.cert, tls.key) if tls is not None else None)
    return out


async def _statuses_over_grpc(members: dict[str, tuple[str, TLSFiles | None]]
                              ) -> dict[str, MemberStatus | None]:
    """Over gRPC: with authentication on, etcd 3.4 refuses its HTTP gateway to a client
    certificate."""
    found = await asyncio.gather(*(endpoint_status(url, tls, timeout=1.0)
                                   for url, tls in members.values()))
    return {name: MemberStatus(str(s.member_id), str(s.leader), s.raft_term)
            if s is not None and s.leader else None
            for name, s in zip(members, found, strict=True)}


def etcd_leader(layout: LabLayout) -> tuple[str, int] | None:
    """The host whose etcd member leads and its raft term, once a majority of the members
    follow it in the newest term; None while an election is on or etcd does not answer."""
    if layout.cluster_mode:
        members = _host_members(layout)
        return leading_host(asyncio.run(_statuses_over_grpc(members))) if members else None
    etcds = layout.etcd_members
    with ThreadPoolExecutor(len(etcds)) as pool:  # a slow member costs its own timeout only
        seen = dict(zip([m.name for m in etcds],
                        pool.map(member_status, [m.client_url for m in etcds]), strict=True))
    return leading_host(seen)


def kill_etcd_leader(layout: LabLayout) -> tuple[str, int]:
    """SIGKILL the leading etcd member (the supervisor restarts it, as systemd would): the
    others elect a new leader. Returns the host and the pid killed."""
    found = etcd_leader(layout)
    if found is None:
        raise FaultError("no etcd leader right now (an election is on, or etcd is down)")
    node = found[0]
    pid = host_children(layout, node).get(f"{node}-etcd")
    if pid is None:
        raise FaultError(f"the etcd member of {node} is not running")
    os.kill(pid, signal.SIGKILL)
    return node, pid


def _need_netns(layout: LabLayout) -> None:
    if not layout.netns:
        raise FaultError("partitions need a lab in network namespaces (run `corral lab up` as "
                         "root, without --no-netns; an existing lab must be destroyed first)")
    _running_state(layout)


def partition(layout: LabLayout, node: str, only: str | None = None) -> None:
    """Cut the host (or the witness) off from every other machine and from the API; its
    processes keep running. only="etcd": from the other etcd members alone (it still reaches
    its peers and they it); only="peers": from everything but etcd."""
    _need_netns(layout)
    i = layout.machine_index(node)
    if only is None:
        netns.set_link(layout, i, connected=False)
    else:
        netns.cut(layout, i, only)


def heal(layout: LabLayout, node: str | None = None) -> list[str]:
    """Reconnect one machine, or every partitioned one (whole or partial cuts); returns those
    reconnected."""
    _need_netns(layout)
    names = [node] if node else layout.machine_names
    healed = []
    for name in names:
        i = layout.machine_index(name)
        whole, partial = not netns.is_connected(layout, i), netns.partial_cut(layout, i)
        if whole:
            netns.set_link(layout, i, connected=True)
        if partial:
            netns.uncut(layout, i)
        if whole or partial:
            healed.append(name)
    return healed


def partitioned(layout: LabLayout) -> list[str]:
    if not layout.netns:
        return []
    out = []
    for i, name in enumerate(layout.machine_names, start=1):
        if not netns.is_connected(layout, i):
            out.append(name)
        elif partial := netns.partial_cut(layout, i):
            out.append(f"{name} ({partial} only)")
    return out
