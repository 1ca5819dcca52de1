"""How a follower reads the log: ranges sized so that a read hands on about a page of events,
whatever holes, tombstones and filtered-out events lie between them, and one read ahead.

The embedded server does not stop an index scan at ``limit``, so every read is a bounded range
of positions; :class:`Ranges` widens the range while few events come back and narrows it when a
read was cut short by a full page.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from .._core.checks import MAX_PAGE
from ..ports import EventLog, LogHead, LogSlice

_MAX_STRETCH = 1024
"""How many pages wide a range, and how many pages of documents a read, may grow."""


@dataclass(slots=True)
class _Prefetch:
    key: tuple[int, int, bool, int]
    """(after, until, every position, limit) of the read in flight."""
    future: asyncio.Future[LogSlice] = field(repr=False)


@dataclass(slots=True)
class Ranges:
    """The reads of one follower: the next range to read, the read itself (taken from the read
    ahead when it asked for the same), and at most one read ahead in flight."""

    log: EventLog
    page_size: int
    event_types: list[str] | None
    aggregate_types: list[str] | None
    _window: int = field(init=False)
    """How many positions the next range spans."""
    _limit: int = field(init=False)
    """How many documents the next read looks at, at most."""
    _prefetch: _Prefetch | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._window = self._limit = self.page_size

    @property
    def filtered(self) -> bool:
        return self.event_types is not None or self.aggregate_types is not None

    def until(self, after: int, head: LogHead) -> int:
        """The end of the next range after ``after``."""
        return min(head.position, after + self._window)

    async def read(self, after: int, until: int, *, every_position: bool) -> LogSlice:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            if prefetch.key == (after, until, every_position, self._limit):
                found = await prefetch.future
                self._adapt(until, found)
                return found
            _cancel(prefetch)
        found = await self._read(after, until, every_position)
        self._adapt(until, found)
        return found

    def read_ahead(self, done: int, head: LogHead) -> None:
        """Start reading the next range while the consumer handles this one (one in flight)."""
        every_position = not head.vouches_for(done, done + 1)
        until = self.until(done, head)
        future = asyncio.ensure_future(self._read(done, until, every_position))
        self._prefetch = _Prefetch((done, until, every_position, self._limit), future)

    def cancel(self) -> None:
        """Drop the read ahead, if one is in flight (the follower stops)."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            _cancel(prefetch)

    async def _read(self, after: int, until: int, every_position: bool) -> LogSlice:
        return await self.log.read(
            after,
            until,
            event_types=self.event_types,
            aggregate_types=self.aggregate_types,
            every_position=every_position,
            limit=self._limit,
        )

    def _adapt(self, until: int, found: LogSlice) -> None:
        """Size the next read from this one: widen the range and look at more documents while
        few events come back; narrow it again when a read was cut short by a full page."""
        cut_short = found.through < until
        if 2 * len(found.events) >= self.page_size:
            self._limit = self.page_size
        elif cut_short:  # mostly tombstones or skipped events: look at more documents
            self._limit = min(self._limit * 2, self.page_size * _MAX_STRETCH, MAX_PAGE)
        if cut_short and len(found.events) >= self.page_size:
            self._window = max(self.page_size, self._window // 2)
        elif not cut_short and 2 * len(found.events) < self.page_size:
            self._window = min(self._window * 2, self.page_size * _MAX_STRETCH)


def _cancel(prefetch: _Prefetch) -> None:
    future = prefetch.future
    if not future.done():
        future.cancel()
    else:  # already failed: read its error so it is not reported as never retrieved
        with contextlib.suppress(BaseException):
            future.result()
