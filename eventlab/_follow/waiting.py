"""How a follower waits: for appends (woken by a change stream where the deployment has one,
else after ``poll_interval``), and after a read that failed (twice as long after each failure in
a row, at most 5 s, woken early by an append all the same)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from ..ports import EventLog, Wakeups
from .supervision import Backoff

logger = logging.getLogger("eventlab.subscriptions")

Wake = Literal["auto", "change_stream", "poll"]

_MAX_BACKOFF = 5.0


class Waiting:
    """The waits of one follower of ``log``: :meth:`open` before the first, :meth:`close` after
    the last; :meth:`interrupt` ends the current one early, from another task."""

    def __init__(self, log: EventLog, wake: Wake, poll_interval: float, *, live: bool) -> None:
        self._log = log
        self._wake = wake
        self._live = live
        self.poll_interval = poll_interval
        self.backoff = Backoff(poll_interval, _MAX_BACKOFF)
        self._opening: Wakeups | None = None
        self._opened: Wakeups | None = None

    @property
    def watching(self) -> bool:
        """Whether appends wake the follower (``False``: it polls)."""
        return self._opened is not None and self._opened.watching

    async def open(self) -> None:
        """Open what wakes the follower: a read that ends only polls; ``"auto"`` watches where
        the deployment can, ``"change_stream"`` requires it."""
        mode: Literal["auto", "push", "poll"] = (
            "poll" if not self._live or self._wake == "poll" else "auto"
        )
        if self._wake == "change_stream":
            mode = "push"
        self._opening = self._log.wakeups(mode=mode)
        await self._opening.__aenter__()
        self._opened = self._opening

    async def wait(self, seconds: float) -> None:
        """Until an append may have happened, or ``seconds`` passed."""
        if self._opened is None:
            await asyncio.sleep(seconds)
        else:
            await self._opened.wait(seconds)

    async def after_failure(self, exc: Exception) -> None:
        """Wait before trying again: twice as long after each failure in a row, at most 5 s."""
        delay = self.backoff.failed()
        logger.warning(
            "subscription read failed (%s; failure %d in a row); retrying in %.2g s",
            exc,
            self.backoff.failures,
            delay,
        )
        await self.wait(delay)

    async def interrupt(self) -> None:
        """End the current wait, and every later one, at once (the follower is closing)."""
        if self._opened is not None:
            self._opened.wake()
            await self._opened.__aexit__(None, None, None)  # idempotent

    async def close(self) -> None:
        if self._opening is not None:
            await self._opening.__aexit__(None, None, None)
