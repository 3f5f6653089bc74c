"""A failed evacuation step is retried on another host when there is one."""

from __future__ import annotations

from test_manager_maintenance import fail_all
from test_manager_world import World, queued

from corral.manager.maintenance import RETRY_AFTER


def test_a_retry_avoids_the_host_the_failed_attempt_went_to() -> None:
    # n2 has the most room but cannot be reached (cut from its peers): the retry goes to n3.
    w = World().node("n1").node("n2", 8192).node("n3").maintenance("n1")
    w.vm(101, "n1")
    [first] = queued(w.step())
    assert first.params["target"] == "n2"
    fail_all(w, "cannot reach n2 from n1")
    w.now += RETRY_AFTER
    [retry] = queued(w.step())
    assert retry.params["target"] == "n3"


def test_with_no_other_host_the_retry_goes_to_the_same_one() -> None:
    w = World().node("n1").node("n2").maintenance("n1")
    w.vm(101, "n1")
    [first] = queued(w.step())
    fail_all(w, "cannot reach n2 from n1")
    w.now += RETRY_AFTER
    [retry] = queued(w.step())
    assert retry.params["target"] == "n2"
