"""What an agent on its way up does with a QEMU that a migration cut short left on its host
(`migration.recovery.leftover`): a guest state may run again only when nothing can have run
it elsewhere since."""

from __future__ import annotations

import pytest

from corral.cluster.models import Placement, RunState
from corral.migration.record import MigrationRecord, Phase
from corral.migration.recovery import Leftover, leftover


def placed(generation: int, moved_by: str | None = None) -> Placement:
    return Placement(node="n1", state=RunState.RUNNING, generation=generation, moved_by=moved_by)


def rec(source: str, target: str, phase: Phase, generation: int | None = 3) -> MigrationRecord:
    return MigrationRecord(vmid=100, source=source, target=target, mode="live", task="mig",
                           receive_task="rx", phase=phase, source_generation=generation)


@pytest.mark.parametrize("phase", [Phase.TRANSFERRING, Phase.ABORTED])
def test_a_source_cut_short_before_the_flip_resumes(phase: Phase) -> None:
    assert leftover("n1", placed(3), rec("n1", "n2", phase), "postmigrate") is Leftover.RESUME


def test_a_record_of_an_older_version_without_the_generation_resumes_as_before() -> None:
    old = rec("n1", "n2", Phase.TRANSFERRING, generation=None)
    assert leftover("n1", placed(7), old, "postmigrate") is Leftover.RESUME


@pytest.mark.parametrize(("why", "placement", "record"), [
    # Flipped to n2, which ran the guest, then recovered back here after n2 was lost.
    ("moved since", placed(5), rec("n1", "n2", Phase.TRANSFERRING)),
    ("completed", placed(5), rec("n1", "n2", Phase.COMPLETED)),
    ("completed, same generation", placed(3), rec("n1", "n2", Phase.COMPLETED)),
    # The source removes the record when it is done: after a flip, as after a roll-back.
    ("no record", placed(3), None),
    ("another migration's record", placed(3), rec("n3", "n2", Phase.TRANSFERRING)),
])
def test_a_source_copy_whose_guest_may_have_gone_on_elsewhere_is_stopped(
        why: str, placement: Placement, record: MigrationRecord | None) -> None:
    assert leftover("n1", placement, record, "postmigrate") is Leftover.STOP, why


def test_a_target_the_flip_reached_finishes_the_switchover() -> None:
    announced = rec("n2", "n1", Phase.COMPLETED)
    assert leftover("n1", placed(4), announced, "paused") is Leftover.FINISH
    # The source was lost between the flip and the record's `completed`.
    unannounced = rec("n2", "n1", Phase.TRANSFERRING)
    assert leftover("n1", placed(4, moved_by="mig"), unannounced, "paused") is Leftover.FINISH


def test_an_incoming_qemu_of_a_vm_placed_here_without_the_flip_is_stopped() -> None:
    waiting = rec("n2", "n1", Phase.READY)
    assert leftover("n1", placed(4), waiting, "inmigrate") is Leftover.STOP
    assert leftover("n1", placed(4), None, "inmigrate") is Leftover.STOP


@pytest.mark.parametrize("status", ["running", "paused", None])
def test_anything_else_is_kept(status: str | None) -> None:
    assert leftover("n1", placed(3), None, status) is Leftover.KEEP
    assert leftover("n1", placed(3), rec("n1", "n2", Phase.ABORTED), status) is Leftover.KEEP
