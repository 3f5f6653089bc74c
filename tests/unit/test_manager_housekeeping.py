"""Finished task records are forgotten after a day, or beyond the newest 500."""

from __future__ import annotations

from corral.cluster.actions import DeleteTask
from corral.cluster.models import Task, TaskState
from corral.cluster.snapshot import ClusterSnapshot
from corral.manager.housekeeping import KEEP_FINISHED, RETENTION_SECONDS, decide_prune

NOW = 1_000_000.0


def task(i: int, ended: float | None, parent: str | None = None,
         state: TaskState = TaskState.OK) -> Task:
    return Task(id=f"t{i}", kind="vm.start", node="n1", vmid=100, parent=parent, state=state,
                created_at=(ended or NOW) - 1, ended_at=ended)


def deleted(tasks: list[Task]) -> list[str]:
    snap = ClusterSnapshot(now=NOW, nodes={}, vms={}, tasks=tasks)
    return [a.task_id for a in decide_prune(snap) if isinstance(a, DeleteTask)]


def test_old_finished_tasks_go_recent_and_running_ones_stay() -> None:
    tasks = [
        task(1, NOW - RETENTION_SECONDS - 10),
        task(2, NOW - 60),
        task(3, None, state=TaskState.RUNNING),
        task(4, NOW - RETENTION_SECONDS - 5, state=TaskState.ERROR),
    ]
    assert deleted(tasks) == ["t1", "t4"]


def test_children_of_an_unfinished_bulk_task_stay() -> None:
    parent = Task(id="bulk", kind="node.bulk", node="n1", state=TaskState.RUNNING)
    child = task(1, NOW - RETENTION_SECONDS - 10, parent="bulk")
    assert deleted([parent, child]) == []


def test_at_most_the_newest_are_kept_and_a_backlog_is_worked_off_in_steps() -> None:
    tasks = [task(i, NOW - 1000 + i * 0.1) for i in range(KEEP_FINISHED + 150)]
    gone = deleted(tasks)
    assert len(gone) == 100 and gone[0] == "t0"  # the oldest first, bounded per pass
    assert not set(gone) & {t.id for t in tasks[-KEEP_FINISHED:]}
