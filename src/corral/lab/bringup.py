"""What `corral lab up` waits for after starting the supervisor, and the demo VMs it creates.

Each step takes a `say` callback for progress and raises LabError with a readable reason.
"""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from corral.lab import control
from corral.lab.layout import LabLayout

Say = Callable[[str], None]
POLL = 0.3
TINY_MEMORY_MB = 96


class LabError(RuntimeError):
    pass


def wait_supervisor(layout: LabLayout, proc: subprocess.Popen[bytes], say: Say,
                    timeout: float = 90.0) -> None:
    stages = {"starting": "starting", "etcd": "starting etcd members",
              "seeding": "seeding the cluster (storages, token)",
              "processes": "starting agents and API"}
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabError(f"the lab supervisor exited with {proc.returncode}:\n"
                           + control.log_tail(layout.log_path("supervisor")))
        state = control.read_state(layout) or {}
        if state.get("ready"):
            return
        say(stages.get(str(state.get("stage", "starting")), str(state.get("stage"))))
        if time.monotonic() > deadline:
            raise LabError(f"the lab supervisor is not ready after {timeout:.0f}s "
                           f"(stage {state.get('stage')}); see {layout.log_path('supervisor')}")
        time.sleep(POLL)


class LabApi:
    """Just enough of the REST API to wait for a lab and create its first VMs."""

    def __init__(self, layout: LabLayout, token: str) -> None:
        self.layout = layout
        verify: ssl.SSLContext | bool = True
        if layout.ca_file is not None:  # cluster mode: n1's API, with the cluster's CA
            verify = ssl.create_default_context(cafile=str(layout.ca_file))
        self.http = httpx.Client(base_url=layout.api_url + "/api/v1", timeout=10.0,
                                 headers={"Authorization": f"Bearer {token}"}, verify=verify)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            reply = self.http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise LabError(f"{method} {path}: {e}") from e
        if reply.status_code >= 400:
            raise LabError(f"{method} {path}: HTTP {reply.status_code} {reply.text[:300]}")
        return reply.json()

    def wait_healthy(self, say: Say, timeout: float = 60.0) -> None:
        say(f"waiting for the API at {self.layout.api_url}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get("/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL)
        raise LabError(f"the API does not answer after {timeout:.0f}s; see "
                       f"{self.layout.log_path('api')}")

    def wait_nodes(self, say: Say, timeout: float = 120.0) -> list[dict[str, Any]]:
        want = set(self.layout.node_names)
        deadline = time.monotonic() + timeout
        online: set[str] = set()
        while True:
            nodes: list[dict[str, Any]] = self.call("GET", "/nodes")
            online = {n["name"] for n in nodes if n.get("online")} & want
            say(f"waiting for the hosts: {len(online)}/{len(want)} online")
            if online == want:
                return nodes
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(want - online))
                raise LabError(f"hosts not online after {timeout:.0f}s: {missing}; see "
                               f"{self.layout.logs_dir}/<host>-agent.log")
            time.sleep(POLL * 3)

    def wait_tasks(self, tasks: dict[str, str], say: Say, what: str,
                   timeout: float = 180.0) -> None:
        """Wait for every task (id -> label) to finish; errors are collected, then raised."""
        pending = dict(tasks)
        errors: list[str] = []
        deadline = time.monotonic() + timeout
        while pending:
            for task_id, label in list(pending.items()):
                task = self.call("GET", f"/tasks/{task_id}")
                if task["state"] in ("ok", "error"):
                    del pending[task_id]
                    if task["state"] == "error":
                        errors.append(f"{label}: {task.get('error') or 'failed'}")
            say(f"{what}: {len(tasks) - len(pending)}/{len(tasks)} done")
            if pending and time.monotonic() > deadline:
                raise LabError(f"{what}: still running after {timeout:.0f}s: "
                               + ", ".join(pending.values()))
            if pending:
                time.sleep(POLL)
        if errors:
            raise LabError(f"{what} failed: " + "; ".join(errors))

    def create_demo_vms(self, count: int, say: Say) -> list[str]:
        """tiny1..tinyK, round-robin over the hosts, created and started. Returns the names."""
        hosts = self.layout.node_names
        created: dict[str, str] = {}
        vmids: dict[str, int] = {}
        for k in range(1, count + 1):
            name = f"tiny{k}"
            reply = self.call("POST", "/vms", {
                "name": name, "memory_mb": TINY_MEMORY_MB, "cores": 1, "image": "tiny",
                "node": hosts[(k - 1) % len(hosts)],
            })
            created[str(reply["task"])] = name
            vmids[name] = int(reply["vmid"])
        self.wait_tasks(created, say, "creating VMs")
        started = {
            str(self.call("POST", f"/vms/{vmid}/status/start")["task"]): name
            for name, vmid in vmids.items()
        }
        self.wait_tasks(started, say, "starting VMs")
        return list(vmids)
