"""A tiny in-memory cluster for the manager's pure tests: plain data in, snapshots out, and
agents that finish tasks the way real ones record them (a migration moves the placement)."""

from __future__ import annotations

from corral.cluster.actions import Action, QueueTask, SetPlacement, UpdateTask
from corral.cluster.models import (
    VM,
    Disk,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMConfig,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.manager.decide import decide

R, S, P = RunState.RUNNING, RunState.STOPPED, RunState.PAUSED


class World:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.rev = 10
        self.nodes: dict[str, Node] = {}
        self.vms: dict[int, VM] = {}
        self.tasks: dict[str, Task] = {}
        self.storages = {
            "local": StorageConfig(id="local", type=StorageType.DIR, path="images"),
            "shared": StorageConfig(id="shared", type=StorageType.SHARED_DIR, path="/srv"),
        }

    def _next(self) -> int:
        self.rev += 1
        return self.rev

    def node(self, name: str, memory_mb: int = 4096, alive: bool = True) -> World:
        info = NodeInfo(name=name, cpus=4, memory_mb=memory_mb, started_at=0)
        self.nodes[name] = Node(name, info, alive, None, None)
        return self

    def maintenance(self, name: str, on: bool = True, no_return: bool = False,
                    parallel: int | None = None, at: float = 500.0) -> World:
        n = self.nodes[name]
        req = NodeRequest(maintenance=on, no_return=no_return, parallel=parallel,
                          requested_at=at)
        self.nodes[name] = Node(n.name, n.info, n.alive, n.usage, req)
        return self

    def set_alive(self, name: str, alive: bool) -> None:
        n = self.nodes[name]
        self.nodes[name] = Node(n.name, n.info, alive, n.usage, n.request)

    def vm(self, vmid: int, node: str, state: RunState = R, memory_mb: int = 256,
           startup: int = 0, policy: str = "migrate", origin: str | None = None,
           local_disk: bool = False) -> World:
        disks = [Disk(volume=f"{'local' if local_disk else 'shared'}:vm-{vmid}.qcow2", size_mb=8)]
        cfg = VMConfig.model_validate({
            "vmid": vmid, "name": f"vm{vmid}", "memory_mb": memory_mb, "cores": 1,
            "disks": [d.model_dump() for d in disks], "startup": startup,
            "maintenance": policy})
        self.vms[vmid] = VM(cfg, Placement(node=node, state=state, origin=origin), self._next(),
                            None)
        return self

    def place(self, vmid: int, **update: object) -> None:
        vm = self.vms[vmid]
        self.vms[vmid] = VM(vm.config, vm.placement.model_copy(update=update), self._next(),
                            vm.runtime)

    def task(self, task: Task) -> World:
        self.tasks[task.id] = task
        return self

    def snap(self) -> ClusterSnapshot:
        return ClusterSnapshot(now=self.now, nodes=dict(self.nodes), vms=dict(self.vms),
                               tasks=sorted(self.tasks.values(), key=lambda t: t.created_at),
                               storages=self.storages, revision=self.rev)

    # --- the shell and the agents --------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, QueueTask):
                self.tasks.setdefault(a.task.id, a.task)
            elif isinstance(a, UpdateTask):
                self.tasks[a.task.id] = a.task
            elif isinstance(a, SetPlacement):
                vm = self.vms[a.vmid]
                if vm.placement_rev == a.expect_rev:
                    self.vms[a.vmid] = VM(vm.config, a.placement, self._next(), vm.runtime)

    def finish(self, task_id: str, error: str | None = None) -> None:
        """What the task's agent records when it ends."""
        t = self.tasks[task_id]
        if error is None and t.vmid is not None:
            p = t.params
            if t.kind == "vm.migrate":
                self.place(t.vmid, node=p["target"], origin=p.get("origin"))
            elif t.kind in ("vm.start", "vm.resume"):
                self.place(t.vmid, state=R)
            elif t.kind in ("vm.shutdown", "vm.stop"):
                self.place(t.vmid, state=S)
            elif t.kind == "vm.suspend":
                self.place(t.vmid, state=P)
        self.tasks[task_id] = t.model_copy(update={
            "state": TaskState.ERROR if error else TaskState.OK, "error": error,
            "ended_at": self.now})

    def agent_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values()
                if not t.state.finished and t.kind.startswith("vm.")]

    def step(self) -> list[Action]:
        actions = decide(self.snap())
        self.apply(actions)
        self.now += 1
        return actions

    def settle(self, rounds: int = 60, fail: dict[int, str] | None = None) -> int:
        """Manager and agents in turn until nothing happens; returns the rounds taken."""
        for i in range(rounds):
            actions = self.step()
            pending = self.agent_tasks()
            for t in pending:
                self.finish(t.id, (fail or {}).get(t.vmid or 0))
            if not actions and not pending:
                return i
        raise AssertionError("the manager did not settle")


def queued(actions: list[Action]) -> list[Task]:
    return [a.task for a in actions if isinstance(a, QueueTask)]
