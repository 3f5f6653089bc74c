"""Building a lab the way an admin builds a cluster: `corral cluster create` on n1, then a
`corral cluster token` and a `corral cluster join` for every other host, each command run as
its own process inside that host's network namespace, with that host's own config and data
directory. The lab supervisor (cluster mode) runs what each host's services ask for. A lab
with a witness gets it last, once every host has joined: a `corral cluster token --witness` and
`corral witness setup` inside the witness's own namespace (machine `w`, index N+1).

Each host gets a prepared host description (`<lab>/nodes/nX/host.plan.json`, HostConfig as
`HostConfig.for_lab` makes it): the lab's addresses, ports, watchdog and lease; create and
join write the real one (`etc/host.json`) with what the cluster told them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from corral.cli.client import write_client_config
from corral.host import config as host_config
from corral.host.commands import AGENT, API
from corral.host.config import HostConfig
from corral.host.services import RunningService, read_status
from corral.lab.layout import LabLayout
from corral.setup import local

Say = Callable[[str], None]
CLUSTER_NAME = "lab"
STEP_TIMEOUT = 240.0  # a join waits for its promotion; a loaded 2-core machine is slow


class BuildError(RuntimeError):
    pass


def host_plan(layout: LabLayout, i: int) -> HostConfig:
    """Machine i's prepared description: a host's, or the witness's (role witness: no
    watchdog, no agent or API; their ports are only reserved)."""
    witness = i == layout.witness_index
    return HostConfig.for_lab(
        layout.root, layout.machine_name(i), cluster=CLUSTER_NAME,
        address=layout.host_address(i), role="witness" if witness else "host",
        etcd_client_port=layout.base_port + i, etcd_peer_port=layout.base_port + 100 + i,
        agent_port=layout.agent_port(i), api_port=layout.host_api_port(i),
        images_dir=layout.images_dir,
        watchdog_timeout=0 if witness else layout.watchdog_timeout,
        lease_ttl=layout.lease_ttl, accel=layout.accel)


def plan_path(layout: LabLayout, i: int) -> Path:
    return layout.node_dir(i) / "host.plan.json"


def client_config_path(layout: LabLayout) -> Path:
    """The lab's own CLI config (n1's API, the token, the CA), for the lab's commands."""
    return layout.root / "client.json"


def built(layout: LabLayout) -> bool:
    """Every machine set up (a lab whose build broke off is built again from scratch only by
    `lab destroy`; a later `up` finishes what is missing)."""
    return all(layout.host_config_path(i).exists() for i in range(1, layout.machines + 1))


def _corral(layout: LabLayout, i: int | None, args: list[str]) -> list[str]:
    """`corral ARGS` as this Python runs it, inside host i's namespace (None: here)."""
    argv = [sys.executable, "-m", "corral.cli.main", *args]
    if i is not None and layout.netns:
        argv = ["ip", "netns", "exec", layout.netns_name(i), *argv]
    return argv


def _run(layout: LabLayout, i: int | None, args: list[str], what: str) -> str:
    env = {**os.environ, "CORRAL_CONFIG": str(client_config_path(layout))}
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    try:
        done = subprocess.run(_corral(layout, i, args), capture_output=True, text=True,
                              env=env, timeout=STEP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what}: no answer after {STEP_TIMEOUT:.0f}s") from e
    if done.returncode != 0:
        raise BuildError(f"{what} failed (exit {done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout


RESTART_TIMEOUT = 30.0


def _wait_restarted(run_dir: Path, before: dict[str, RunningService],
                    names: tuple[str, ...]) -> None:
    """Until the supervisor runs each of these services under a new pid."""
    deadline = time.monotonic() + RESTART_TIMEOUT
    while True:
        now = read_status(run_dir).services
        if all(n in now and (n not in before or now[n].pid != before[n].pid) for n in names):
            return
        if time.monotonic() > deadline:
            raise BuildError(f"{run_dir}: {', '.join(names)} not restarted within "
                             f"{RESTART_TIMEOUT:.0f}s")
        time.sleep(0.2)


def build(layout: LabLayout, say: Say) -> str:
    """Create the cluster on n1, join every other host, then set up the witness (if any);
    returns the API token. Machines set up already are left as they are."""
    for i in range(1, layout.machines + 1):
        host_config.save(host_plan(layout, i), plan_path(layout, i))
    if not layout.host_config_path(1).exists():
        say("n1: corral cluster create")
        _run(layout, 1, ["cluster", "create", CLUSTER_NAME,
                         "--host-config", str(plan_path(layout, 1)),
                         "--shared-dir", str(layout.shared_dir),
                         "--client-config", str(client_config_path(layout))],
             "cluster create on n1")
    server = f"{layout.host_address(1)}:{layout.host_api_port(1)}"
    for i in range(2, layout.nodes + 1):
        if layout.host_config_path(i).exists():
            continue
        say(f"n{i}: corral cluster join {server}")
        token = _run(layout, None, ["cluster", "token", "--ttl", "600"],
                     "cluster token").strip().splitlines()[-1]
        _run(layout, i, ["cluster", "join", server, "--token", token, "--host-config",
                         str(plan_path(layout, i)),
                         "--client-config", str(layout.node_dir(i) / "client.json")],
             f"cluster join on n{i}")
    if (w := layout.witness_index) is not None and not layout.host_config_path(w).exists():
        name = layout.machine_name(w)
        say(f"{name}: corral witness setup {server}")
        token = _run(layout, None, ["cluster", "token", "--witness", "--ttl", "600"],
                     "cluster token --witness").strip().splitlines()[-1]
        _run(layout, w, ["witness", "setup", server, "--token", token,
                         "--host-config", str(plan_path(layout, w))],
             f"witness setup on {name}")
    # The hosts that joined early learn of the later members: their agents and APIs are
    # restarted with every member's endpoint (etcd itself keeps its own membership).
    members = [host_config.load(layout.host_config_path(i)) for i in range(1, layout.machines + 1)]
    endpoints = [m.client_url for m in members]
    for config in members:
        if config.role == "host" and sorted(config.etcd_endpoints) != sorted(endpoints):
            say(f"{config.name}: agent and API restarted with every member's endpoint")
            before = read_status(config.run_dir).services
            local.adopt_endpoints(config, endpoints, local.services_for(config))
            _wait_restarted(config.run_dir, before, (AGENT, API))
    token = str(json.loads(client_config_path(layout).read_text())["token"])
    # Every host's API, so that the lab's commands outlive n1.
    write_client_config(layout.api_url, token, client_config_path(layout), ca=layout.ca_file,
                        others=layout.other_api_urls)
    fd = os.open(layout.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token
