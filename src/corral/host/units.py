"""The systemd unit of each service of a host, from the same command lines the lab supervisor
runs (`host.commands`). Pure: text in, text out.

Ordering: the agent comes after etcd and the watchdog, so at a shutdown it stops first, while
etcd still takes its last writes (the shutdown policy) and the watchdog still guards its VMs.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from corral.agent.settings import AgentSettings
from corral.host.commands import (
    AGENT,
    ETCD,
    SERVICES,
    WATCHDOG,
    ServiceCommand,
    ServiceName,
    host_commands,
)
from corral.host.config import HostConfig

HEADER = ("# Written by Corral (`corral cluster create` / `join`), which rewrites it: edit the "
          "host's\n# config (host.json) instead.\n")
# A word systemd takes as it is: no quotes, escapes, specifiers, variables or separators.
BARE = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# Stop margin of the agent on top of its clean host shutdown (evacuation, then the guests).
AGENT_STOP_MARGIN = 60.0


def _specifiers(text: str) -> str:
    """% starts a specifier (%n, %h, ...) anywhere in a unit file's values, quoted or not."""
    return text.replace("%", "%%")


def quote_word(word: str, variables: bool = True) -> str:
    """One argument as systemd reads it back unchanged: % doubled (specifiers), $ doubled
    when the setting expands $VAR (ExecStart=), and anything but a plain word put in double
    quotes with C escapes (systemd unquotes and then unescapes). An unquoted lone ';' would
    separate commands; quoted it is an argument."""
    word = _specifiers(word)
    if variables:
        word = word.replace("$", "$$")
    if BARE.fullmatch(word.replace("%%", "").replace("$$", "")):
        return word
    out = []
    for ch in word:
        if ch in C_ESCAPES:
            out.append(C_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def exec_line(argv: Sequence[str]) -> str:
    """ExecStart='s value. The program must be an absolute path: systemd would read a
    leading '-', '@', '+', '!' or ':' as a flag, and look a bare name up in its own PATH."""
    if not argv or not argv[0].startswith("/"):
        raise ValueError(f"the program must be an absolute path, not {argv[0] if argv else ''!r}")
    return " ".join(quote_word(a) for a in argv)


def environment_line(env: dict[str, str]) -> str:
    """Environment='s value (no $VAR expansion there; specifiers still)."""
    for key in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"not an environment variable name: {key!r}")
    return " ".join(quote_word(f"{k}={v}", variables=False) for k, v in sorted(env.items()))


def _section(name: str, lines: Sequence[str]) -> str:
    return f"[{name}]\n" + "".join(f"{line}\n" for line in lines)


def _deps(*units: str) -> list[str]:
    return [f"Wants={' '.join(units)}", f"After={' '.join(units)}"]


def _policy(name: ServiceName, siblings: Collection[ServiceName]
            ) -> tuple[list[str], list[str]]:
    """The [Unit] and [Service] settings of a service, beyond its command, with the why.
    siblings: the services the host runs (a host without a watchdog has no mux unit)."""
    if name == ETCD:
        return (
            [*_deps("network-online.target"), "StartLimitIntervalSec=0"],
            [
                "# Not Type=notify: etcd says it is ready only once its cluster has a quorum; a",
                "# member waiting for its peers (a host booting alone, the survivor of two) must",
                "# not be killed by a start timeout, nor hold up the agent (it retries etcd).",
                "Type=exec",
                "Restart=always",
                "RestartSec=2s",
                "TimeoutStopSec=30s",
                "# A file per WAL segment and snapshot, a socket per client and peer.",
                "LimitNOFILE=65536",
            ],
        )
    if name == WATCHDOG:
        return (
            # softdog, when there is no hardware watchdog, comes from modules-load.d.
            ["After=systemd-modules-load.service", "StartLimitIntervalSec=0"],
            [
                "Type=exec",
                "# A mux that dies with clients armed leaves the device to reset the host one",
                "# device timeout later, unless a new mux takes over before: restart at once.",
                "Restart=always",
                "RestartSec=100ms",
                "# A stop sends SIGTERM, which the mux refuses while a client (the agent) is",
                "# armed: it keeps judging them and ends once the last disarmed (a clean agent",
                "# stop with no VM left). After a finite TimeoutStopSec systemd would SIGKILL it,",
                "# and the device, closed without its magic close, would reset the host. So the",
                "# stop job waits. At a shutdown the agent (ordered after this unit) stops first;",
                "# if it leaves VMs running, the mux starves the device once the agent is gone",
                "# and the reset ends the shutdown: the host stops only once it is fenced.",
                "TimeoutStopSec=infinity",
                "# The OOM killer taking the mux would reset the host.",
                "OOMScoreAdjust=-1000",
                "# Its fence time allows it one feed interval of latency: it must get the CPU",
                "# within that on a loaded host.",
                "Nice=-20",
            ],
        )
    if name == AGENT:
        stop = (AgentSettings.evacuate_timeout + AgentSettings.vm_shutdown_timeout
                + AGENT_STOP_MARGIN)
        return (
            [
                "# Wants, not Requires: Requires carries an explicit stop or restart of etcd or",
                "# the mux over to the agent, and an agent stopped while its VMs run leaves the",
                "# host to its watchdog. The agent retries etcd itself, and without a watchdog's",
                "# acknowledgement publishes its host as not fenceable rather than not starting.",
                *_deps(*(f"{s}.service" for s in (ETCD, WATCHDOG) if s in siblings),
                       "network-online.target"),
                "StartLimitIntervalSec=0",
            ],
            [
                "Type=exec",
                "Restart=always",
                "# Back well within the watchdog's client timeout: the VMs still run, and the",
                "# new agent must adopt them and feed again before the host is fenced.",
                "RestartSec=500ms",
                "# QEMU daemonises (-daemonize, in a session of its own) but stays in this unit's",
                "# cgroup, and the default KillMode=control-group kills the whole cgroup on a",
                "# stop or restart: every VM would die with an agent upgrade. KillMode=process",
                "# signals the agent alone; its QEMUs run on and the next agent adopts them. A",
                "# host shutdown stops them through the agent (its shutdown policy), and",
                "# whatever is left ends in systemd's final kill of all processes.",
                "KillMode=process",
                "# A clean host shutdown: evacuation, then the guests' ACPI power-off, then a",
                "# margin (AgentSettings.evacuate_timeout, vm_shutdown_timeout).",
                f"TimeoutStopSec={stop:g}s",
                "# The QEMUs live in this cgroup: their threads count against its task limit,",
                "# and they inherit its file limit (disks, taps, sockets).",
                "TasksMax=infinity",
                "LimitNOFILE=65536",
            ],
        )
    return (
        [*_deps(f"{ETCD}.service", "network-online.target"), "StartLimitIntervalSec=0"],
        ["Type=exec", "Restart=always", "RestartSec=2s", "LimitNOFILE=65536"],
    )


def unit_text(command: ServiceCommand, siblings: Collection[ServiceName] = SERVICES) -> str:
    """The unit file of one service; siblings: the services its host runs."""
    unit, service = _policy(command.name, siblings)
    service = [f"ExecStart={exec_line(command.argv)}", *service]
    if command.env:
        service.insert(1, f"Environment={environment_line(command.env)}")
    return HEADER + "\n".join([
        _section("Unit", [f"Description={_specifiers(command.description)}", *unit]),
        _section("Service", service),
        _section("Install", ["WantedBy=multi-user.target"]),
    ])


def unit_name(name: ServiceName) -> str:
    return f"{name}.service"


def host_units(config: HostConfig, machine: str = "") -> dict[str, str]:
    """File name -> text of every unit the host runs, in start order."""
    commands = host_commands(config, machine)
    names = [c.name for c in commands]
    return {unit_name(c.name): unit_text(c, names) for c in commands}
