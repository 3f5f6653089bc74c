"""Housekeeping: finished task records do not pile up in etcd. Pure."""

from __future__ import annotations

from corral.cluster.actions import Action, DeleteTask
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot

RETENTION_SECONDS = 24 * 3600  # a finished task stays this long for `corral task list` ...
KEEP_FINISHED = 500  # ... and at most this many of them
MAX_DELETES_PER_PASS = 100  # a backlog is worked off over several passes, keeping each short


def decide_prune(snap: ClusterSnapshot) -> list[Action]:
    unfinished = {t.id for t in snap.unfinished()}
    finished = sorted(
        (t for t in snap.tasks if t.state.finished and t.parent not in unfinished),
        key=_ended, reverse=True,
    )
    old = [t for i, t in enumerate(finished)
           if i >= KEEP_FINISHED or snap.now - _ended(t) > RETENTION_SECONDS]
    # Oldest first; a bulk parent's children go with it, never before it.
    old.sort(key=_ended)
    return [DeleteTask(t.id) for t in old[:MAX_DELETES_PER_PASS]]


def _ended(task: Task) -> float:
    return task.ended_at if task.ended_at is not None else task.created_at
