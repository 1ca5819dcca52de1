"""Where a follower starts: after a position, at the beginning, or at the end.

``start="end"`` is "after every position that is settled" (committed, or never going to be):
the head on a ``transactional`` store; on a ``preallocated`` one, below the lowest position an
open append still holds (:func:`settled_end`), so that an append that commits late is never
passed by a start either.
"""

from __future__ import annotations

from typing import Literal

from .._core.checks import check_int
from ..ports import EventLog, LogHead
from .holes import abandon

Start = int | Literal["beginning", "end"]

_END_SCAN = 10_000
"""Positions read per round while looking for the settled end of a ``preallocated`` log."""


async def settled_end(log: EventLog, head: LogHead) -> int:
    """Where a follower that starts at the end starts: the highest position ``p`` such that
    every position at or below it holds an event or a tombstone, or the head vouches for it.

    On a ``transactional`` store that is the head. Below ``head.settled_after`` (a
    ``preallocated`` store, or positions taken before a migration) every position is looked at
    once, positions only: each hole is abandoned at once, as after ``gap_timeout``, and the
    start goes below the lowest one an open append still holds or has just filled, so that
    its event is delivered when it commits instead of being passed by the start.
    """
    after, scan_to = 0, min(head.settled_after, head.position)
    while after < scan_to:
        until = min(scan_to, after + _END_SCAN)
        slots = await log.read(after, until, event_types=(), every_position=True, limit=_END_SCAN)
        present = slots.present or frozenset()
        holes = [p for p in range(after + 1, slots.through + 1) if p not in present]
        if holes:
            outcome = await abandon(log, holes)
            unsettled = outcome.filled + outcome.in_flight
            if unsettled:
                return min(unsettled) - 1
        after = slots.through
    return head.position


async def start_position(log: EventLog, start: Start) -> int:
    """The position a follower that starts at ``start`` follows after (``"end"``: see
    :func:`settled_end`)."""
    if start == "beginning":
        return 0
    if start == "end":
        return await settled_end(log, await log.head())
    return check_int(start, "start")
