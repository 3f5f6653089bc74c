"""Stopping background tasks so that a stop always ends.

A cancel can be lost: a library may swallow it, and Python 3.11's `wait_for` returns the
result instead when what it awaited finished in the same loop pass. The task then runs on,
and a stop that waits for it (`gather`) waits forever: an agent that never exits on SIGTERM,
a host shutdown whose monitor still records guests. `cancel_and_wait` cancels again until
the task ends, and names it in the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# A cancelled task ends within milliseconds; this long after a cancel it has lost it.
PATIENCE_SECONDS = 5.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]],
                          patience: float = PATIENCE_SECONDS) -> None:
    """Cancel tasks and return once every one has ended, whatever it ended with (its
    exception is taken, as `gather(return_exceptions=True)` takes it). A cancel of the caller
    itself is not swallowed: it raises here, the tasks already cancelled."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    rounds = 0
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=patience)
        _take_results(done)
        rounds += 1
        if pending:
            log.warning("%s still running %.0fs after being cancelled; cancelling again",
                        ", ".join(sorted(t.get_name() for t in pending)), rounds * patience)
    _take_results(tasks)


def _take_results(done: Iterable[asyncio.Task[Any]]) -> None:
    for task in done:
        if not task.cancelled():
            task.exception()  # seen: not reported as "never retrieved"
