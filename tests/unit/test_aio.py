"""cancel_and_wait ends even when a task loses its first cancel, and never swallows the
caller's own."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from corral.aio import cancel_and_wait


async def deaf_once(stopped: list[str]) -> None:
    """Runs on after its first cancel, as a task whose cancel was dropped does."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    try:
        await asyncio.sleep(60)
    finally:
        stopped.append("deaf")


async def test_a_task_that_lost_its_cancel_is_cancelled_again_and_named(
        caplog: pytest.LogCaptureFixture) -> None:
    stopped: list[str] = []
    deaf = asyncio.create_task(deaf_once(stopped), name="monitor")
    plain = asyncio.create_task(asyncio.sleep(60), name="usage")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([deaf, plain], patience=0.05), 5)
    assert deaf.cancelled() and plain.cancelled() and stopped == ["deaf"]
    assert "monitor still running" in caplog.text and "usage" not in caplog.text


async def test_gather_would_wait_for_it_forever() -> None:
    """What cancel_and_wait is for: the stop the agent had before hangs on such a task."""
    deaf = asyncio.create_task(deaf_once([]))
    await asyncio.sleep(0)
    deaf.cancel()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(asyncio.gather(deaf, return_exceptions=True)), 0.2)
    deaf.cancel()
    await asyncio.gather(deaf, return_exceptions=True)


async def test_a_failed_task_is_taken_and_finished_ones_are_left_alone() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fail())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait([failed, finished])
    assert isinstance(failed.exception(), RuntimeError) and not finished.cancelled()


async def test_the_callers_own_cancel_is_raised() -> None:
    deaf = asyncio.create_task(deaf_once([]))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([deaf], patience=60))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    deaf.cancel()
    await asyncio.gather(deaf, return_exceptions=True)
