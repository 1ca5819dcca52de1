"""Waiting with a time limit never swallows a cancellation (Python 3.11's ``asyncio.wait_for``
does when the cancellation arrives as the awaited thing completes: the cancelled task runs on,
as a subscriber cancelled just as a change stream woke it once did, following forever)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from eventlab._core.tasks import ended, within, woken


async def test_a_cancellation_that_arrives_as_the_event_is_set_is_kept() -> None:
    ran_on: list[bool] = []

    async def wait_then_go_on(event: asyncio.Event) -> None:
        await woken(event, 10)
        ran_on.append(True)

    for _ in range(20):
        event = asyncio.Event()
        task = asyncio.ensure_future(wait_then_go_on(event))
        await asyncio.sleep(0)  # the task is now waiting on the event
        event.set()
        task.cancel()  # in the same turn of the loop as the wake-up
        await asyncio.wait({task})
        assert task.cancelled() and not ran_on


async def test_within_times_out_and_returns_what_it_awaited() -> None:
    assert await within(asyncio.sleep(0, "done"), 5) == "done"
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    assert await woken(asyncio.Event(), 0.01) is False


async def test_ended_waits_without_swallowing_the_waiters_cancellation() -> None:
    blocker = asyncio.Event()
    inner = asyncio.ensure_future(blocker.wait())
    outer_ran_on = False

    async def outer() -> None:
        nonlocal outer_ran_on
        await ended(inner)
        outer_ran_on = True

    task = asyncio.ensure_future(outer())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task})
    assert task.cancelled() and not outer_ran_on
    inner.cancel()
    await ended(inner)  # a cancelled task: waited for, nothing raised
    failing = asyncio.ensure_future(asyncio.sleep(0, None))
    await ended(failing)
    assert failing.done()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 rewrote wait_for on timeouts")
async def test_the_flaw_this_avoids_is_real_on_this_python() -> None:
    event = asyncio.Event()
    ran_on = []

    async def with_wait_for() -> None:
        await asyncio.wait_for(event.wait(), 10)
        ran_on.append(True)

    task = asyncio.ensure_future(with_wait_for())
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    await asyncio.wait({task})
    assert ran_on == [True] and not task.cancelled(), "wait_for swallowed the cancellation"
