"""Following the log: its history in ranges, then new events live, in position order, never
skipping a committed event and never repeating one.

:class:`CatchUpSubscription` reads an :class:`~eventlab.ports.EventLog` and hands out events in
**contiguous** position order: its ``position`` (the checkpoint) only ever passes a position
that holds an event, holds a tombstone, or is settled by the head (``transactional``
positions, docs/positions.md). A hole that may still fill is waited for; once it has been open
``gap_timeout`` seconds the subscription asks the log to abandon it, and the log's tombstone
and a late append race on one document, so exactly one of them wins. Time decides only *when*
the subscription looks again, never *whether* an event can still arrive.

The clocks of holes come from a **high-water mark**: every position below the head starts its
clock when the subscription first sees the head pass it, so a burst of aborted appends costs
one ``gap_timeout``, not one per hole.

``start="end"`` is "after every position that is settled": the head on a ``transactional``
store; on a ``preallocated`` one, below the lowest position an open append still holds
(:func:`settled_end`), so that an append that commits late is never passed by a start either.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal, Self

from .._core import telemetry as telemetry
from .._core.checks import MAX_PAGE, check_int, check_page_size, check_positive, check_types
from .._core.errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConnectionFailedError,
    NotAuthorizedError,
    SubscriptionError,
    TransientError,
)
from .._core.race_points import FOLLOW_BEFORE_ABANDON, FOLLOW_HEAD_READ
from .._core.records import StoredEvent
from ..ports import KEPT_GAPS, Abandonment, EventLog, LogHead, LogSlice, Wakeups
from .supervision import Backoff

logger = logging.getLogger("eventlab.subscriptions")

Start = int | Literal["beginning", "end"]
Wake = Literal["auto", "change_stream", "poll"]

DEFAULT_GAP_TIMEOUT = 2.0
"""Seconds a hole stays open before a follower abandons it (docs/positions.md)."""
_MAX_BACKOFF = 5.0
_MAX_STRETCH = 1024
_MAX_ABANDON = 10_000
_BLOCKED_RECHECK = 0.25
_END_SCAN = 10_000
"""Positions read per round while looking for the settled end of a ``preallocated`` log."""


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


@dataclass(slots=True)
class _Step:
    batch: Batch | None = None
    wait: float | None = None
    """Seconds to wait before the next read (a hole that may still fill), or ``None``."""


@dataclass(slots=True)
class _Prefetch:
    key: tuple[int, int, bool, int]
    """(after, until, every position, limit) of the read in flight."""
    future: asyncio.Future[LogSlice] = field(repr=False)


class _Ranges:
    """How a follower reads: ranges sized so that a read hands on about a page of events,
    whatever holes, tombstones and filtered-out events lie between them, and one read ahead."""

    def __init__(
        self,
        log: EventLog,
        page_size: int,
        event_types: list[str] | None,
        aggregate_types: list[str] | None,
    ) -> None:
        self._log = log
        self.page_size = page_size
        self.event_types = event_types
        self.aggregate_types = aggregate_types
        self._window = page_size
        self._limit = page_size
        self._prefetch: _Prefetch | None = None

    @property
    def filtered(self) -> bool:
        return self.event_types is not None or self.aggregate_types is not None

    def until(self, after: int, head: LogHead) -> int:
        return min(head.position, after + self._window)

    async def read(self, after: int, until: int, *, every_position: bool) -> LogSlice:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            if prefetch.key == (after, until, every_position, self._limit):
                found = await prefetch.future
                self._adapt(until, found)
                return found
            _cancel(prefetch)
        found = await self._log.read(
            after,
            until,
            event_types=self.event_types,
            aggregate_types=self.aggregate_types,
            every_position=every_position,
            limit=self._limit,
        )
        self._adapt(until, found)
        return found

    def read_ahead(self, done: int, head: LogHead) -> None:
        """Start reading the next range while the consumer handles this one (one in flight)."""
        settled = head.settles(done, done + 1)
        until = self.until(done, head)
        future = asyncio.ensure_future(
            self._log.read(
                done,
                until,
                event_types=self.event_types,
                aggregate_types=self.aggregate_types,
                every_position=not settled,
                limit=self._limit,
            )
        )
        self._prefetch = _Prefetch((done, until, not settled, self._limit), future)

    def cancel(self) -> None:
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is not None:
            _cancel(prefetch)

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


class _Holes:
    """How a follower settles holes: every hole's clock starts when the head first passed it
    (a high-water mark), and ripe holes are abandoned together."""

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

    async def settle(self, holes: list[int]) -> float | None:
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


class _Steps:
    """What one read of a follower hands on: settled ranges as they are, the contiguous prefix
    of the rest, ripe holes abandoned; at most a page of events, and at most ``remaining``."""

    def __init__(self, ranges: _Ranges, holes: _Holes, remaining: int | None) -> None:
        self.ranges = ranges
        self.holes = holes
        self.remaining = remaining

    async def after(self, after: int, head: LogHead) -> _Step:
        """One read after ``after``: a batch to hand on, and how long to wait, if at all."""
        if FOLLOW_HEAD_READ.armed:
            await FOLLOW_HEAD_READ.reach()
        settled = head.settles(after, after + 1)
        found = await self.ranges.read(
            after, self.ranges.until(after, head), every_position=not settled
        )
        if settled:
            return self._settled_step(head, after, found)
        return await self._unsettled_step(head, after, found)

    def _settled_step(self, head: LogHead, after: int, found: LogSlice) -> _Step:
        """Every position of the slice is settled: hand on what it holds."""
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
        return _Step(Batch(tuple(events), done, tuple(gaps)))

    async def _unsettled_step(self, head: LogHead, after: int, found: LogSlice) -> _Step:
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
            return _Step(Batch(tuple(events), done, _upto(found.abandoned, done)))
        batch = (
            Batch(tuple(events), prefix, _upto(found.abandoned, prefix)) if prefix > after else None
        )
        if prefix == through or self.remaining == 0:
            if prefix < head.position and self.remaining != 0:
                self.ranges.read_ahead(prefix, head)
            return _Step(batch)
        holes = [p for p in range(prefix + 1, through + 1) if p not in present]
        if through < head.position and through not in present:  # a hole wider than the slice
            holes += await self.holes.extent(through, head, self.ranges.page_size)
        return _Step(batch, await self.holes.settle(holes))

    def _take(self, events: list[StoredEvent]) -> list[StoredEvent]:
        """At most a page of events (a batch), and at most what ``max_count`` leaves."""
        page = self.ranges.page_size
        wanted = page if self.remaining is None else min(page, self.remaining)
        taken = events[:wanted]
        if self.remaining is not None:
            self.remaining -= len(taken)
        return taken


async def abandon(log: EventLog, positions: list[int]) -> Abandonment:
    """``log.abandon(positions)``; a user who may not write tombstones is told why one must."""
    try:
        return await log.abandon(positions)
    except NotAuthorizedError as exc:
        raise NotAuthorizedError(
            f"a follower settles the holes of a preallocated log by writing tombstones into "
            f"its events collection, and this user may not ({exc}); grant it insert there, or "
            "follow the store as a user who may",
            code=exc.code,
        ) from exc


async def settled_end(log: EventLog, head: LogHead) -> int:
    """Where a follower that starts at the end starts: the highest position ``p`` such that
    every position at or below it holds an event or a tombstone, or is settled by ``head``.

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


class CatchUpSubscription:
    """The log after a position, as an async iterator that catches up and then follows.

    ``async for event in store.subscribe():`` reads in a notebook cell as in a service. Memory
    is bounded: one range is read ahead at most, and the next is read only when the consumer
    asks, so a slow consumer slows the reads instead of filling memory.

    :param log: the :class:`~eventlab.ports.EventLog` to follow (``store.log``).
    :param start: a position to follow after, ``"beginning"`` (0) or ``"end"``: after every
        position that is settled now (the head; on a ``preallocated`` store, below the lowest
        position an open append holds, see :func:`settled_end`).
    :param event_types: only these event types (the position still moves over the others,
        whose payloads are never read).
    :param aggregate_types: only these aggregate types.
    :param page_size: events per read.
    :param live: after catching up, wait for new events (``False``: stop at the head).
    :param wake: ``"auto"`` uses a change stream where the deployment has one and polls
        otherwise; ``"change_stream"`` requires one; ``"poll"`` never opens one.
    :param poll_interval: seconds between reads while caught up without a change stream (and
        the longest wait with one, as a safety net).
    :param gap_timeout: seconds a hole stays open before the subscription abandons it
        (default 2): what it costs is latency behind a hole, never an event (docs/positions.md).
    :param on_gap: called with the positions of each permanent gap passed.
    :param max_count: stop after this many events.

    A live subscription retries what may succeed later (a :class:`~eventlab.TransientError`:
    a lost connection, an election) with exponential backoff up to 5 s, and raises what will
    not (a missing privilege, a wrong setting, data it cannot read); one that ends raises
    every error but a lost connection.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        start: Start = "beginning",
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        page_size: int = 500,
        live: bool = True,
        wake: Wake = "auto",
        poll_interval: float = 0.5,
        gap_timeout: float | None = None,
        on_gap: Callable[[list[int]], None] | None = None,
        max_count: int | None = None,
    ) -> None:
        if start not in ("beginning", "end"):
            check_int(start, "start")
        if wake not in ("auto", "change_stream", "poll"):
            raise ConfigurationError(f"wake must be 'auto', 'change_stream' or 'poll': {wake!r}")
        if not _positive_number(poll_interval):
            raise ConfigurationError(f"poll_interval must be a positive number: {poll_interval!r}")
        if gap_timeout is not None and not _non_negative_number(gap_timeout):
            raise ConfigurationError(f"gap_timeout must be a number >= 0: {gap_timeout!r}")
        self._log = log
        self._start = start
        self.position = 0 if start in ("beginning", "end") else int(start)
        """The last position the subscription is done with (a checkpoint)."""
        self._ranges = _Ranges(
            log,
            check_page_size(page_size),
            None if event_types is None else check_types(event_types),
            None if aggregate_types is None else check_types(aggregate_types, "aggregate type"),
        )
        self._live = live
        self._wake_mode = wake
        self._poll_interval = float(poll_interval)
        self._holes = _Holes(
            log,
            DEFAULT_GAP_TIMEOUT if gap_timeout is None else float(gap_timeout),
            self._poll_interval,
        )
        self._steps = _Steps(
            self._ranges,
            self._holes,
            None if max_count is None else check_positive(max_count, "max_count"),
        )
        self._on_gap = on_gap
        self.gaps: list[int] = []
        """The latest permanent gaps passed (at most :data:`~eventlab.ports.KEPT_GAPS`,
        1,000), in order; ``gaps_passed`` counts them all."""
        self.gaps_passed = 0
        self._backoff = Backoff(self._poll_interval, _MAX_BACKOFF)
        self._wakeups: Wakeups | None = None
        self.ready = asyncio.Event()
        """Set once the subscription knows where it starts and, live, has opened what wakes it:
        an event appended from then on reaches it (a readiness signal for callers and tests)."""
        self._started = False
        self.head_seen = 0
        """The highest head this subscription has read (its lag is ``head_seen - position``)."""
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("live" if self._live else "to the head")
        return (
            f"<CatchUpSubscription at position {self.position:,}, {state}: iterate with "
            "`async for`, or `await .to_list()`>"
        )

    # -- iteration ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self._events()

    def __iter__(self) -> Any:
        raise TypeError(
            "a subscription is asynchronous: use `async for event in ...` (in a notebook cell "
            "as well), or `events = await ....to_list()`"
        )

    async def _events(self) -> AsyncIterator[StoredEvent]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield event

    async def to_list(self) -> list[StoredEvent]:
        """Every event of a read that ends (``live=False``) as a list."""
        if self._live:
            raise SubscriptionError("a live subscription never ends: use `async for`")
        return [event async for event in self]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following: the change stream is closed and the iterator ends."""
        self._closed = True
        self._ranges.cancel()
        if self._wakeups is not None:
            self._wakeups.wake()
            await self._wakeups.__aexit__(None, None, None)  # idempotent

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def consecutive_errors(self) -> int:
        """Reads that failed in a row and are being tried again (0: the last one went through)."""
        return self._backoff.failures

    @property
    def watching(self) -> bool:
        """Whether a change stream wakes the subscription (``False``: it polls)."""
        return self._wakeups is not None and not self._closed and self._wakeups.watching

    # -- the loop ----------------------------------------------------------------------------

    async def batches(self, *, nest_reads: bool = False) -> AsyncGenerator[Batch, None]:
        """The subscription as batches (what :class:`~eventlab.Subscriber` checkpoints after).

        ``nest_reads``: the spans of the reads that find a batch are not exported as they
        end but handed on with it (:attr:`Batch.reads`), for the consumer to emit inside its
        batch span (:func:`eventlab._core.telemetry.emit`), so that a batch is one trace.
        """
        held: list[telemetry.HeldSpan] = []
        if self._started:
            raise SubscriptionError("a subscription is iterated once; subscribe again")
        self._started = True
        mode: Literal["auto", "push", "poll"] = (
            "poll" if not self._live or self._wake_mode == "poll" else "auto"
        )
        if self._wake_mode == "change_stream":
            mode = "push"
        wakeups = self._log.wakeups(mode=mode)
        try:
            await wakeups.__aenter__()
            self._wakeups = wakeups
            head = await self._head()
            if self._start == "end":
                self.position = max(self.position, await settled_end(self._log, head))
            self.ready.set()
            # A read that ends stops at the head it found when it started: a consistent prefix
            # of the log, which writers that keep appending cannot stretch forever.
            target = head.position
            while not self._closed:
                if not self._live and self.position >= target:
                    return
                if self.position >= head.position:
                    head = await self._head()
                    if self.position >= head.position:
                        await wakeups.wait(self._poll_interval)
                        continue
                try:
                    with telemetry.held_for_later(held) if nest_reads else _nothing():
                        step = await self._steps.after(self.position, head)
                except (TransientError, CommitOutcomeUnknownError) as exc:
                    # A tombstone's commit may be unknown: abandoning again is idempotent.
                    if not self._live and not isinstance(exc, ConnectionFailedError):
                        raise
                    await self._back_off(exc, wakeups)
                    continue
                self._backoff.succeeded()
                if step.batch is not None:
                    self.position = step.batch.position
                    self._holes.marks.forget_through(self.position)
                    self._report(list(step.batch.gaps))
                    reads = tuple(held)
                    held.clear()  # in place: a read ahead in flight records into this list
                    yield replace(step.batch, reads=reads) if reads else step.batch
                    if self._steps.remaining == 0:
                        return
                if step.wait is not None:
                    await wakeups.wait(step.wait)
                    head = await self._head()
        finally:
            self._closed = True
            self._ranges.cancel()
            await wakeups.__aexit__(None, None, None)

    async def _head(self) -> LogHead:
        """The head, retried through server outages (the subscription cannot do without)."""
        while True:
            try:
                head = await self._log.head()
            except TransientError as exc:
                if self._closed or not self._live:
                    raise
                await self._back_off(exc, self._wakeups)
                continue
            self._holes.marks.saw(head.position, time.monotonic())
            self.head_seen = max(self.head_seen, head.position)
            return head

    def _report(self, gaps: list[int]) -> None:
        if not gaps:
            return
        self.gaps_passed += len(gaps)
        self.gaps.extend(gaps[-KEPT_GAPS:])
        del self.gaps[:-KEPT_GAPS]
        logger.info("subscription passed permanent gap(s) at position(s) %s", _ranges(gaps))
        if self._on_gap is not None:
            self._on_gap(list(gaps))

    async def _back_off(self, exc: Exception, wakeups: Wakeups | None) -> None:
        """Wait before trying again: twice as long after each failure in a row, at most 5 s."""
        delay = self._backoff.failed()
        logger.warning(
            "subscription read failed (%s; failure %d in a row); retrying in %.2g s",
            exc,
            self._backoff.failures,
            delay,
        )
        if wakeups is None:
            await asyncio.sleep(delay)
        else:
            await wakeups.wait(delay)


def _cancel(prefetch: _Prefetch) -> None:
    future = prefetch.future
    if not future.done():
        future.cancel()
    else:  # already failed: read its error so it is not reported as never retrieved
        with contextlib.suppress(BaseException):
            future.result()


_nothing = contextlib.nullcontext


def _upto(positions: tuple[int, ...], done: int) -> tuple[int, ...]:
    return tuple(p for p in positions if p <= done)


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _ranges(positions: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``"3-5, 9"``."""
    runs: list[str] = []
    first = last = positions[0]
    for p in positions[1:]:
        if p != last + 1:
            runs.append(str(first) if first == last else f"{first}-{last}")
            first = p
        last = p
    runs.append(str(first) if first == last else f"{first}-{last}")
    return ", ".join(runs)


class FollowsItsLog:
    """``read_all`` and ``subscribe`` for any store with a ``log``: what every backend's store
    offers on top of its :class:`~eventlab.ports.EventLog`, written once."""

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
