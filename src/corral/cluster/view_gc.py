"""Keep a view's records out of the cyclic garbage collector's full passes.

A full collection walks every tracked object: with 5,000 VMs held (and the API's answers
built from them) one takes 20 to 90 ms, during which no request is served, and under a
steady stream of writes one comes every few seconds. The records are plain data without
reference cycles, freed by reference counting when they change, so the collector has
nothing to find in them. `gc.freeze()` moves everything alive into a generation it never
walks; done after each full listing, which replaces every record.

Records that change after the listing are new objects, and every full pass walked them
again: an API that had created its 5,000 VMs after it started paused 88 ms in one. So what
survives a full pass is frozen too, and the next passes walk only what came since. A frozen
object is never examined for cycles, so a cycle that forms among frozen objects later (a
connection's protocol and transport once closed) would never be freed: every
`THAW_SECONDS` the frozen objects go back to the collector for one full pass that finds such
cycles, and are frozen again after it.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from corral.cluster.view import ClusterView

OLDEST = 2  # the generation a full pass collects
THAW_SECONDS = 600.0  # how long cyclic garbage among frozen objects may wait to be freed


class FullPassFreezer:
    """A `gc.callbacks` entry: after each full pass, freeze its survivors, except once every
    `thaw_seconds`, when the frozen objects are given back for the next full pass."""

    def __init__(self, thaw_seconds: float = THAW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.thaw_seconds = thaw_seconds
        self.clock = clock
        self.thawed_at = clock()
        self.frozen = 0  # full passes after which survivors were frozen
        self.thawed = 0  # and after which the frozen objects were given back

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        # Called with the GIL held, after the pass is complete: the generations are whole
        # lists again, which is all freeze and unfreeze touch.
        if phase != "stop" or info.get("generation") != OLDEST:
            return
        if self.clock() - self.thawed_at >= self.thaw_seconds:
            gc.unfreeze()  # into the oldest generation: the next full pass walks them once
            self.thawed_at = self.clock()
            self.thawed += 1
        else:
            gc.freeze()
            self.frozen += 1


_users = 0
_freezer: FullPassFreezer | None = None


def _install() -> Callable[[], None]:
    """One freezer per process, however many views freeze: the first installs it, the last to
    stop removes it."""
    global _users, _freezer
    if _freezer is None:
        _freezer = FullPassFreezer()
        gc.callbacks.append(_freezer)
    _users += 1

    done = False

    def uninstall() -> None:
        global _users, _freezer
        nonlocal done
        if done:
            return
        done = True
        _users -= 1
        if _users == 0 and _freezer is not None:
            gc.callbacks.remove(_freezer)
            _freezer = None

    return uninstall


def freeze_listed(view: ClusterView) -> Callable[[], None]:
    """Freeze now (call once the view has listed), after each listing and after each full
    pass; returns how to stop."""
    gc.freeze()

    def listed(changed: list[str] | None) -> None:
        if changed is None:
            gc.freeze()

    stop_listening = view.listen(listed)
    uninstall = _install()

    def stop() -> None:
        stop_listening()
        uninstall()

    return stop
