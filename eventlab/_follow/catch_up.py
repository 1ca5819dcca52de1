"""Following the log: its history in ranges, then new events live, in position order, never
skipping a committed event and never repeating one.

:class:`CatchUpSubscription` is what a consumer iterates; its parts live beside it: the ranges
it reads (:mod:`.ranges`), what one read hands on (:mod:`.batches`: the contiguous prefix of
what may still fill), the holes it waits for and abandons (:mod:`.holes`), where it starts
(:mod:`.start`) and where it is (:mod:`.follower_state`). This module runs them: it reads the
head, waits to be woken, and retries what may succeed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import Any, Self

from .._core import telemetry as telemetry
from .._core.checks import check_int, check_page_size, check_positive, check_types
from .._core.errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConnectionFailedError,
    SubscriptionError,
    TransientError,
)
from .._core.records import StoredEvent
from ..ports import EventLog, LogHead
from .batches import Batch, BatchReader
from .follower_state import FollowerState
from .holes import DEFAULT_GAP_TIMEOUT, Holes
from .ranges import Ranges
from .start import Start, settled_end
from .waiting import Waiting, Wake


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
        self._state = FollowerState(0 if start in ("beginning", "end") else int(start), on_gap)
        self._ranges = Ranges(
            log,
            check_page_size(page_size),
            None if event_types is None else check_types(event_types),
            None if aggregate_types is None else check_types(aggregate_types, "aggregate type"),
        )
        self._live = live
        self._waiting = Waiting(log, wake, float(poll_interval), live=live)
        self._holes = Holes(
            log,
            DEFAULT_GAP_TIMEOUT if gap_timeout is None else float(gap_timeout),
            self._waiting.poll_interval,
        )
        self._reader = BatchReader(
            self._ranges,
            self._holes,
            None if max_count is None else check_positive(max_count, "max_count"),
        )
        self.ready = asyncio.Event()
        """Set once the subscription knows where it starts and, live, has opened what wakes it:
        an event appended from then on reaches it (a readiness signal for callers and tests)."""
        self._started = False
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

    async def __aexit__(self, *exc_info: object) -> None:
        """Closed on the way out, whatever ended the block (it raises nothing of its own)."""
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following: the change stream is closed and the iterator ends."""
        self._closed = True
        self._ranges.cancel()
        await self._waiting.interrupt()

    @property
    def position(self) -> int:
        """The last position the subscription is done with (a checkpoint)."""
        return self._state.position

    @property
    def head_seen(self) -> int:
        """The highest head this subscription has read (its lag is ``head_seen - position``)."""
        return self._state.head_seen

    @property
    def gaps(self) -> list[int]:
        """The latest permanent gaps passed (at most :data:`~eventlab.ports.KEPT_GAPS`,
        1,000), in order; :attr:`gaps_passed` counts them all."""
        return self._state.gaps

    @property
    def gaps_passed(self) -> int:
        """How many permanent gaps the subscription has passed in all."""
        return self._state.gaps_passed

    @property
    def closed(self) -> bool:
        """Whether the subscription has stopped: closed, at its end, or failed."""
        return self._closed

    @property
    def consecutive_errors(self) -> int:
        """Reads that failed in a row and are being tried again (0: the last one went through)."""
        return self._waiting.backoff.failures

    @property
    def watching(self) -> bool:
        """Whether a change stream wakes the subscription (``False``: it polls)."""
        return not self._closed and self._waiting.watching

    # -- the loop ----------------------------------------------------------------------------

    async def batches(self, *, nest_reads: bool = False) -> AsyncGenerator[Batch, None]:
        """The subscription as batches (what :class:`~eventlab.Subscriber` checkpoints after).

        ``nest_reads``: the spans of the reads that find a batch are not exported as they
        end but handed on with it (:attr:`Batch.reads`), for the consumer to emit inside its
        batch span (:func:`eventlab._core.telemetry.emit`), so that a batch is one trace.
        """
        held: list[telemetry.HeldSpan] = []
        state = self._state
        if self._started:
            raise SubscriptionError("a subscription is iterated once; subscribe again")
        self._started = True
        waiting = self._waiting
        try:
            await waiting.open()
            head = await self._head()
            if self._start == "end":
                state.position = max(state.position, await settled_end(self._log, head))
            self.ready.set()
            # A read that ends stops at the head it found when it started: a consistent prefix
            # of the log, which writers that keep appending cannot stretch forever.
            target = head.position
            while not self._closed:
                if not self._live and state.position >= target:
                    return
                if state.position >= head.position:
                    head = await self._head()
                    if state.position >= head.position:
                        await waiting.wait(waiting.poll_interval)
                        continue
                try:
                    with telemetry.held_for_later(held) if nest_reads else _nothing():
                        step = await self._reader.after(state.position, head)
                except (TransientError, CommitOutcomeUnknownError) as exc:
                    # A tombstone's commit may be unknown: abandoning again is idempotent.
                    if not self._live and not isinstance(exc, ConnectionFailedError):
                        raise
                    await waiting.after_failure(exc)
                    continue
                waiting.backoff.succeeded()
                if step.batch is not None:
                    state.passed(step.batch)
                    self._holes.marks.forget_through(state.position)
                    reads = tuple(held)
                    held.clear()  # in place: a read ahead in flight records into this list
                    yield replace(step.batch, reads=reads) if reads else step.batch
                    if self._reader.remaining == 0:
                        return
                if step.wait is not None:
                    await waiting.wait(step.wait)
                    head = await self._head()
        finally:
            self._closed = True
            self._ranges.cancel()
            await waiting.close()

    async def _head(self) -> LogHead:
        """The head, retried through server outages (the subscription cannot do without)."""
        while True:
            try:
                head = await self._log.head()
            except TransientError as exc:
                if self._closed or not self._live:
                    raise
                await self._waiting.after_failure(exc)
                continue
            self._holes.marks.saw(head.position, time.monotonic())
            self._state.saw_head(head.position)
            return head


_nothing = contextlib.nullcontext


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _non_negative_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
