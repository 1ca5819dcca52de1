"""``read_all`` and ``subscribe``: the two ways every backend's store opens a
:class:`~eventlab.CatchUpSubscription` on its log, written once for all of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .._core.checks import check_int
from ..ports import EventLog
from .catch_up import CatchUpSubscription
from .start import Start
from .waiting import Wake


class ReadAllAndSubscribe:
    """``read_all`` and ``subscribe`` for any store with a ``log``: what every backend's store
    offers on top of its :class:`~eventlab.ports.EventLog`, written once (a base class of
    :class:`~eventlab.MongoEventStore` and :class:`~eventlab.memory.MemoryEventStore`)."""

    @property
    def log(self) -> EventLog:
        raise NotImplementedError

    def read_all(
        self,
        after_position: int = 0,
        *,
        max_count: int | None = None,
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        page_size: int = 1000,
        gap_timeout: float | None = None,
    ) -> CatchUpSubscription:
        """The log after ``after_position`` up to its head, in position order.

        ``async for event in store.read_all(checkpoint): ...``, or ``await
        store.read_all().to_list()``. Read by bounded ranges, ``page_size`` events at a time,
        so memory stays flat. It never passes a position that may still commit: a hole is
        waited for (at most ``gap_timeout`` seconds) and then abandoned, so resuming from the
        last position it handed out never skips an event on any strategy. It ends at the head
        as it was when the read started.
        """
        return CatchUpSubscription(
            self.log,
            start=check_int(after_position, "after_position"),
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            live=False,
            gap_timeout=gap_timeout,
            max_count=max_count,
        )

    def subscribe(
        self,
        *,
        start: Start = "beginning",
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        page_size: int = 500,
        wake: Wake = "auto",
        poll_interval: float = 0.5,
        gap_timeout: float | None = None,
        on_gap: Callable[[list[int]], None] | None = None,
    ) -> CatchUpSubscription:
        """A catch-up subscription: the log after ``start`` in ranges, then new events live.

        ``async for event in store.subscribe(): ...``; like :meth:`read_all` it never moves
        past a position that may still commit, and when it reaches the head it waits for new
        events instead of ending. For a named checkpoint and a handler,
        :class:`~eventlab.Subscriber`.
        """
        return CatchUpSubscription(
            self.log,
            start=start,
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            wake=wake,
            poll_interval=poll_interval,
            gap_timeout=gap_timeout,
            on_gap=on_gap,
        )
