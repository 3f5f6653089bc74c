"""Which task states are finished, however the state was made: decoded from a record or
named in code."""

from __future__ import annotations

from corral.cluster.models import Task, TaskState
from corral.cluster.records import dump, load


def test_ok_and_error_are_finished_queued_and_running_are_not() -> None:
    assert {s for s in TaskState if s.finished} == {TaskState.OK, TaskState.ERROR}


def test_a_decoded_task_answers_the_same() -> None:
    for state in TaskState:
        task = Task(id="t1", kind="vm.start", node="n1", state=state)
        decoded = load(Task, dump(task))
        assert decoded.state.finished is state.finished
        assert Task.model_validate({"id": "t1", "kind": "vm.start", "node": "n1",
                                    "state": state.value}).state.finished is state.finished
