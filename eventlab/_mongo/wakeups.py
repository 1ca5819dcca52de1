"""Waking followers of a MongoDB log when it may have grown (the
:class:`~eventlab.ports.Wakeups` port)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, Self

from pymongo.errors import InvalidOperation, PyMongoError

from .._core.errors import EventlabError, SubscriptionError
from .._core.tasks import ended, within, woken
from .schema import EventStoreSchema

logger = logging.getLogger("eventlab.subscriptions")

_REOPEN_PAUSE = 0.5
"""Seconds before a closed change stream is opened again (no spinning on a dead one)."""


class ChangeStreamWakeups:
    """Woken by every insert into the events collection, through a change stream that is
    reopened after errors; where there is none (a standalone server) it only times out.

    It only wakes: every event is still read from the log, so order and contiguity come from
    positions, never from the stream.
    """

    def __init__(self, schema: EventStoreSchema, mode: Literal["auto", "push", "poll"]) -> None:
        self._schema = schema
        self._mode = mode
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.watching = False

    async def __aenter__(self) -> Self:
        if self._mode == "poll":
            return self
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[bool] = loop.create_future()
        self._task = loop.create_task(self._watch(opened))
        try:
            self.watching = await within(asyncio.shield(opened), 10)
        except TimeoutError:
            self.watching = False
        if not self.watching and self._mode == "push":
            await self.__aexit__(None, None, None)
            raise SubscriptionError(
                "this deployment has no change streams (a standalone server?); "
                "use wake='poll' or 'auto'"
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closed = True
        self._woken.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await ended(task)
        self.watching = False

    async def wait(self, timeout: float) -> None:
        await woken(self._woken, timeout)
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()

    async def _watch(self, opened: asyncio.Future[bool]) -> None:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"_id": 1}},
        ]
        while not self._closed:
            try:
                await self._schema.ready()
                events = self._schema.events
                async with await events.watch(pipeline, max_await_time_ms=1000) as stream:
                    if not opened.done():
                        opened.set_result(True)
                    self.watching = True
                    self._woken.set()  # anything committed while (re)opening is read now
                    # try_next() answers None at once, without any I/O, once the stream
                    # is dead: looping on it without checking would never yield the loop.
                    while not self._closed and stream.alive:
                        if await stream.try_next() is not None:
                            self._woken.set()
                if not self._closed:  # the stream ended: reopen it, without spinning
                    await asyncio.sleep(_REOPEN_PAUSE)
            except asyncio.CancelledError:
                raise
            except InvalidOperation:
                # The client was closed under a follower that was never closed itself (an
                # abandoned ``async for``): nothing can wake it any more; end, do not retry.
                self.watching = False
                if not opened.done():
                    opened.set_result(False)
                return
            except (PyMongoError, EventlabError) as exc:
                self.watching = False
                if not opened.done():  # no change streams here: the reader polls
                    opened.set_result(False)
                    return
                logger.info("change stream closed (%s); reopening", exc)
                await asyncio.sleep(_REOPEN_PAUSE)
