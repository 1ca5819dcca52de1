"""How a follower gets past holes: a hole that may still fill is waited for, and once it has
been open ``gap_timeout`` seconds it is abandoned (the log writes a tombstone there, and a late
append races the tombstone on one document, so exactly one of them wins).

The clocks of holes come from a **high-water mark**: every position below the head starts its
clock when the follower first sees the head pass it, so a burst of aborted appends costs one
``gap_timeout``, not one per hole. Time decides only *when* the follower looks again, never
*whether* an event can still arrive.
"""

from __future__ import annotations

import bisect
import time

from .._core.errors import NotAuthorizedError
from .._core.race_points import FOLLOW_BEFORE_ABANDON
from ..ports import Abandonment, EventLog, LogHead

DEFAULT_GAP_TIMEOUT = 2.0
"""Seconds a hole stays open before a follower abandons it (docs/positions.md)."""
_MAX_ABANDON = 10_000
"""Positions abandoned in one call at most."""
_BLOCKED_RECHECK = 0.25
"""Seconds before looking again at a hole an open transaction holds."""


class HighWaterMark:
    """When each position was first seen handed out: ``(head, time)`` marks, heads rising.

    A position's clock is the time of the first mark whose head is at or above it, so every
    hole below a head read starts its clock at that read, however far below it lies.
    """

    def __init__(self) -> None:
        self._heads: list[int] = []
        self._times: list[float] = []

    def saw(self, head: int, now: float) -> None:
        if not self._heads or head > self._heads[-1]:
            self._heads.append(head)
            self._times.append(now)

    def since(self, position: int) -> float | None:
        """When ``position`` was first seen handed out (``None``: not yet)."""
        index = bisect.bisect_left(self._heads, position)
        return self._times[index] if index < len(self._times) else None

    def forget_through(self, position: int) -> None:
        """Drop marks that only cover positions at or below ``position`` (done with)."""
        index = bisect.bisect_right(self._heads, position)
        del self._heads[:index], self._times[:index]


class Holes:
    """The holes in front of one follower: how far a hole runs, and which of them have been
    open ``gap_timeout`` seconds and are abandoned together."""

    def __init__(self, log: EventLog, gap_timeout: float, poll_interval: float) -> None:
        self._log = log
        self.gap_timeout = gap_timeout
        self._poll_interval = poll_interval
        self.marks = HighWaterMark()

    async def extent(self, after: int, head: LogHead, width: int) -> list[int]:
        """The positions of a hole that runs on past ``after``, found by positions-only reads
        of doubling width (a hole of 100,000 positions costs a handful of reads)."""
        extent: list[int] = []
        while after < head.position and len(extent) < _MAX_ABANDON:
            until = min(head.position, after + width)
            slots = await self._log.read(after, until, event_types=(), every_position=True, limit=1)
            present = slots.present or frozenset()
            if present:
                extent += range(after + 1, min(present))
                break
            extent += range(after + 1, until + 1)
            after, width = until, width * 2
        return extent[:_MAX_ABANDON]

    async def abandon_ripe(self, holes: list[int]) -> float | None:
        """Abandon the holes that have been open ``gap_timeout``; how long to wait before
        looking again (``None``: at once, a tombstone or an event is there now)."""
        now = time.monotonic()
        first_seen = self.marks.since(holes[0])
        age = now - first_seen if first_seen is not None else 0.0
        if age < self.gap_timeout:
            return min(self._poll_interval, self.gap_timeout - age)
        ripe = [p for p in holes if now - (self.marks.since(p) or now) >= self.gap_timeout]
        if FOLLOW_BEFORE_ABANDON.armed:
            await FOLLOW_BEFORE_ABANDON.reach()
        outcome = await abandon(self._log, ripe)
        if holes[0] in outcome.in_flight:
            # An open transaction holds it: it commits (we see it) or aborts (we abandon it).
            return min(self._poll_interval, _BLOCKED_RECHECK)
        return None


async def abandon(log: EventLog, positions: list[int]) -> Abandonment:
    """``log.abandon(positions)``; a user who may not write tombstones is told why one must."""
    try:
        return await log.abandon(positions)
    except NotAuthorizedError as exc:
        raise NotAuthorizedError(
            f"a follower abandons the holes of a preallocated log by writing tombstones into "
            f"its events collection, and this user may not ({exc}); grant it insert there, or "
            "follow the store as a user who may",
            code=exc.code,
        ) from exc
