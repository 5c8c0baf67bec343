"""The http source's request timeouts: one loop timer for all of them, in the order they start."""

from __future__ import annotations

import asyncio

import pytest

from collector.sources.http import Timeouts

pytestmark = pytest.mark.anyio


async def test_an_await_past_its_timeout_is_cut_short_and_marked_expired() -> None:
    timeouts = Timeouts(0.05)
    task = asyncio.current_task()
    assert task is not None
    with timeouts.start(task) as timed:
        await asyncio.sleep(5)
    assert timed.expired
    await asyncio.sleep(0)  # the task is not left cancelled


async def test_awaits_finished_in_time_are_not_touched() -> None:
    timeouts = Timeouts(0.05)
    task = asyncio.current_task()
    assert task is not None
    for _ in range(3):
        with timeouts.start(task) as timed:
            await asyncio.sleep(0)
        assert not timed.expired
    await asyncio.sleep(0.1)  # the timer fires over finished timeouts only
    with timeouts.start(task) as timed:
        await asyncio.sleep(5)
    assert timed.expired


async def test_each_task_gets_its_own_deadline() -> None:
    timeouts = Timeouts(0.1)
    results: dict[str, bool] = {}

    async def wait(name: str, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        with timeouts.start(task) as timed:
            await asyncio.sleep(seconds)
        results[name] = timed.expired

    await asyncio.gather(wait("slow", 5), wait("quick", 0.01), wait("slow too", 5))
    assert results == {"slow": True, "quick": False, "slow too": True}


async def test_a_cancellation_that_is_not_the_timeouts_goes_on() -> None:
    timeouts = Timeouts(5)

    async def wait() -> None:
        task = asyncio.current_task()
        assert task is not None
        with timeouts.start(task):
            await asyncio.sleep(5)

    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_new_event_loop_starts_afresh() -> None:
    timeouts = Timeouts(0.05)

    async def expired(seconds: float) -> bool:
        task = asyncio.current_task()
        assert task is not None
        with timeouts.start(task) as timed:
            await asyncio.sleep(seconds)
        return timed.expired

    # The first loop ends with its timer armed; the second must arm its own.
    assert not asyncio.run(expired(0))
    assert asyncio.run(expired(5))
