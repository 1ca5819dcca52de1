"""What one read of a follower hands on: a :class:`Batch` of events in **contiguous** position
order, and how long to wait before the next read.

A follower's checkpoint only ever passes a position that holds an event, holds a tombstone, or
that the head vouches for (``transactional`` positions, docs/positions.md). Over a range the
head vouches for, a read is handed on as it is; over the rest, only the prefix in which every
position is occupied, and the holes after it are waited for, then abandoned (:mod:`.holes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._core import telemetry as telemetry
from .._core.race_points import FOLLOW_HEAD_READ
from .._core.records import StoredEvent
from ..ports import LogHead, LogSlice
from .holes import Holes
from .ranges import Ranges


@dataclass(frozen=True, slots=True)
class Batch:
    """What one read hands on: the events that pass the filters, in position order, and the
    checkpoint after them (it also covers filtered-out events and permanent gaps)."""

    events: tuple[StoredEvent, ...]
    position: int
    gaps: tuple[int, ...] = ()
    reads: tuple[telemetry.HeldSpan, ...] = field(default=(), compare=False, repr=False)
    """The spans of the log reads that found this batch, held for the consumer's batch span
    (``batches(nest_reads=True)``; empty otherwise)."""


@dataclass(slots=True)
class Step:
    batch: Batch | None = None
    wait: float | None = None
    """Seconds to wait before the next read (a hole that may still fill), or ``None``."""


class BatchReader:
    """The next batch after a position: ranges the head vouches for as they are, the
    contiguous prefix of the rest, ripe holes abandoned; at most a page of events, and at most
    ``remaining``."""

    def __init__(self, ranges: Ranges, holes: Holes, remaining: int | None) -> None:
        self.ranges = ranges
        self.holes = holes
        self.remaining = remaining

    async def after(self, after: int, head: LogHead) -> Step:
        """One read after ``after``: a batch to hand on, and how long to wait, if at all."""
        if FOLLOW_HEAD_READ.armed:
            await FOLLOW_HEAD_READ.reach()
        vouched = head.vouches_for(after, after + 1)
        found = await self.ranges.read(
            after, self.ranges.until(after, head), every_position=not vouched
        )
        if vouched:
            return self._vouched_step(head, after, found)
        return await self._contiguous_step(head, after, found)

    def _vouched_step(self, head: LogHead, after: int, found: LogSlice) -> Step:
        """The head vouches for every position of the slice: hand on what it holds."""
        events = self._take(found.events)
        done = found.through
        if len(events) < len(found.events):  # a full batch, or max_count, cut it short
            done = (events[-1].position or after) if events else after
        gaps: list[int] = []
        if not self.ranges.filtered:  # a restored store's holes, and abandoned positions
            held = {e.position for e in events}
            gaps = [p for p in range(after + 1, done + 1) if p not in held]
        if done < head.position:
            self.ranges.read_ahead(done, head)
        return Step(Batch(tuple(events), done, tuple(gaps)))

    async def _contiguous_step(self, head: LogHead, after: int, found: LogSlice) -> Step:
        """Positions that may still fill: pass a contiguous prefix, abandon ripe holes."""
        present = found.present or frozenset()
        through = found.through
        prefix = after
        while prefix < through and prefix + 1 in present:
            prefix += 1
        eligible = [e for e in found.events if (e.position or 0) <= prefix]
        events = self._take(eligible)
        if len(events) < len(eligible):  # a full batch, or max_count: the rest comes next
            done = (events[-1].position or after) if events else after
            return Step(Batch(tuple(events), done, _upto(found.abandoned, done)))
        batch = (
            Batch(tuple(events), prefix, _upto(found.abandoned, prefix)) if prefix > after else None
        )
        if prefix == through or self.remaining == 0:
            if prefix < head.position and self.remaining != 0:
                self.ranges.read_ahead(prefix, head)
            return Step(batch)
        holes = [p for p in range(prefix + 1, through + 1) if p not in present]
        if through < head.position and through not in present:  # a hole wider than the slice
            holes += await self.holes.extent(through, head, self.ranges.page_size)
        return Step(batch, await self.holes.abandon_ripe(holes))

    def _take(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """At most a page of events (a batch), and at most what ``max_count`` leaves."""
        page = self.ranges.page_size
        wanted = page if self.remaining is None else min(page, self.remaining)
        taken = events[:wanted]
        if self.remaining is not None:
            self.remaining -= len(taken)
        return taken


def _upto(positions: tuple[int, ...], done: int) -> tuple[int, ...]:
    return tuple(p for p in positions if p <= done)
