"""The collector's full passes skip what survived the last one, and a cycle among frozen
objects is still freed once they are given back."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator

import pytest

from corral.cluster import view_gc
from corral.cluster.view_gc import FullPassFreezer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Node:
    """Weak-referenceable, so a test can see when the collector frees it."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def clean_gc() -> Iterator[None]:
    gc.collect()
    gc.unfreeze()
    callbacks = list(gc.callbacks)
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def installed(freezer: FullPassFreezer) -> Callable[[], None]:
    gc.callbacks.append(freezer)
    return lambda: gc.callbacks.remove(freezer)


def cycle() -> weakref.ref[Node]:
    """Two objects that refer to each other and nothing else: only a full pass frees them."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_survivors_of_a_full_pass_are_frozen(clean_gc: None) -> None:
    clock = Clock()
    freezer = FullPassFreezer(thaw_seconds=600, clock=clock)
    remove = installed(freezer)
    kept = [Node() for _ in range(1000)]
    gc.collect(2)
    remove()
    assert freezer.frozen == 1
    assert gc.get_freeze_count() >= len(kept)
    gc.collect(1)  # a young pass neither freezes nor thaws
    assert freezer.frozen == 1 and freezer.thawed == 0


def test_without_it_survivors_stay_in_the_oldest_generation(clean_gc: None) -> None:
    kept = [Node() for _ in range(1000)]
    gc.collect(2)
    assert gc.get_freeze_count() == 0
    assert len(gc.get_objects(generation=2)) >= len(kept)


def test_a_cycle_among_frozen_objects_is_freed_after_the_thaw(clean_gc: None) -> None:
    clock = Clock()
    freezer = FullPassFreezer(thaw_seconds=600, clock=clock)
    remove = installed(freezer)
    try:
        gone = cycle()
        a = gone()  # alive through the pass, and so frozen with it
        gc.collect(2)
        del a
        gc.collect(2)
        assert gone() is not None, "frozen: full passes do not look at it"
        clock.now = 599.0
        gc.collect(2)
        assert gone() is not None
        clock.now = 600.0
        gc.collect(2)  # this pass gives the frozen objects back...
        assert freezer.thawed == 1 and gc.get_freeze_count() == 0
        gc.collect(2)  # ...and the next one frees the cycle, then freezes again
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        remove()


def test_one_freezer_per_process_however_many_views(clean_gc: None) -> None:
    class View:
        def listen(self, listener: object) -> Callable[[], None]:
            return lambda: None

    before = len(gc.callbacks)
    stops = [view_gc.freeze_listed(View()) for _ in range(3)]  # type: ignore[arg-type]
    assert len(gc.callbacks) == before + 1
    stops[0]()
    stops[0]()  # stopping twice counts once
    stops[1]()
    assert len(gc.callbacks) == before + 1
    stops[2]()
    assert len(gc.callbacks) == before
