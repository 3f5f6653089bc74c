"""A reader of the view that is cancelled ends cancelled, even when what it waited for arrives
in the same loop pass. An agent's monitor that ran on after its cancel held the agent's stop
forever (Python 3.11's wait_for returned the result and dropped the cancel)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from corral.cluster.store import Store
from corral.cluster.view import ClusterView

PASSES = range(8)  # loop passes between the answer and the cancel: one of them is the race


class RevisionStore:
    """Answers the revision request when the test says so."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def current_revision(self) -> int:
        return await self.answer


async def settle(passes: int) -> None:
    for _ in range(passes):
        await asyncio.sleep(0)


async def ends_cancelled_if_cancelled(reader: asyncio.Task[Any], passes: int) -> None:
    await settle(passes)
    if reader.cancel():  # still running: the cancel must not be lost
        with pytest.raises(asyncio.CancelledError):
            await reader
    else:
        await reader  # it had finished before the cancel: nothing to lose


@pytest.mark.parametrize("passes", PASSES)
async def test_a_consistent_read_cancelled_as_the_revision_arrives_ends_cancelled(
        passes: int) -> None:
    store = RevisionStore()
    view = ClusterView(cast(Store, store))
    view.state.advance(5)  # the view already has the revision: no catch-up to wait for
    reader = asyncio.create_task(view.current(0.0))
    await settle(2)  # the request is out
    store.answer.set_result(5)
    await ends_cancelled_if_cancelled(reader, passes)


@pytest.mark.parametrize("passes", PASSES)
async def test_a_wait_for_a_revision_cancelled_as_the_view_moves_ends_cancelled(
        passes: int) -> None:
    view = ClusterView(cast(Store, RevisionStore()))
    reader = asyncio.create_task(view.wait_for(5, 10.0))
    await settle(2)
    view.state.advance(5)
    view._changed(["/corral/vms/1/config"])
    await ends_cancelled_if_cancelled(reader, passes)
