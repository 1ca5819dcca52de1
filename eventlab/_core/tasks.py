"""Stopping a background task: let it finish, cancel it when it does not in time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable``, or :class:`TimeoutError` after ``seconds``.

    Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation of the waiting task
    that arrives as the awaited thing completes (it returns the result instead), and the
    cancelled task runs on. A subscriber cancelled just as a change stream woke it kept
    following the log forever that way. ``asyncio.timeout`` tells its own cancellation from
    anyone else's.
    """
    async with asyncio.timeout(seconds):
        return await awaitable


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait at most ``seconds`` for ``event``; whether it was set."""
    try:
        await within(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def ended(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` (usually just cancelled) has ended, without raising its outcome.

    Not ``with suppress(CancelledError): await task``: that also swallows a cancellation of
    the *waiting* task, which then runs on as if nobody had cancelled it.
    """
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved, so never reported as "exception was never retrieved"


async def finish(
    task: asyncio.Task[Any], timeout: float, *, after_cancel: float | None = None
) -> BaseException | None:
    """Wait ``timeout`` seconds for ``task``; cancel it if it is still running then, and wait
    for the cancellation (at most ``after_cancel`` seconds, None: until it ends). Returns the
    exception the task ended with, if it ended with one other than its cancellation."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=after_cancel)
    if task.done() and not task.cancelled():
        return task.exception()
    return None
