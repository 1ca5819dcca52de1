"""Stopping a background task: let it finish, cancel it when it does not in time."""

from __future__ import annotations

import asyncio
from typing import Any


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
