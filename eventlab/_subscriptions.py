"""Catch-up subscriptions: the log's history in pages, then new events live, in position order,
never skipping a committed event and never repeating one.

Two pieces:

* :class:`CatchUpSubscription` reads. It pages the log by bounded position ranges (O(page) per
  page on any server), hands out events only in **contiguous** position order, and when it has
  caught up it waits to be woken by a change stream (or polls where there is none).
* :class:`Subscriber` runs a handler over a subscription under a named checkpoint, in one of
  two delivery modes: ``"exactly_once"`` (the handler's writes and the checkpoint commit in one
  transaction) or ``"at_least_once"`` (the checkpoint is saved after the handler ran).

Holes. With ``transactional`` positions a position becomes visible only after every lower one
(the counter is taken inside the append's transaction), so a missing position with a higher one
visible can only come from a restore of a store that had holes: it is passed at once. With
``preallocated`` positions a lower position can commit *after* a higher one, so the reader does
not move past a hole until it is filled or has stayed open ``gap_timeout`` seconds; it then
records it as a permanent gap, once (docs/positions.md, "Following the log").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from pymongo.errors import PyMongoError

from ._checkpoints import MongoCheckpointStore
from ._checks import check_int, check_positive, check_types
from ._errors import ConfigurationError, ConnectionFailedError, EventlabError, SubscriptionError
from ._event_codec import from_document
from ._records import StoredEvent
from ._session import SessionProvider
from ._tasks import finish
from ._unit_of_work import run_unit_of_work

if TYPE_CHECKING:
    from ._event_store import MongoEventStore

logger = logging.getLogger("eventlab.subscriptions")

Start = int | Literal["beginning", "end"]
Wake = Literal["auto", "change_stream", "poll"]
DeliveryMode = Literal["exactly_once", "at_least_once"]

_GAP_MARGIN = 5.0
_MAX_BACKOFF = 5.0


@dataclass(frozen=True, slots=True)
class Batch:
    """What one read hands on: the events that pass the filters, in position order, and the
    checkpoint after them (it also covers filtered-out events and permanent gaps)."""

    events: tuple[StoredEvent, ...]
    position: int
    gaps: tuple[int, ...] = ()


class CatchUpSubscription:
    """The log after a position, as an async iterator that catches up and then follows.

    ``async for event in store.subscribe():`` reads in a notebook cell as in a service. Memory
    is bounded: one page is read ahead at most, and the next is read only when the consumer
    asks, so a slow consumer slows the reads instead of filling memory.

    :param start: a position to follow after, ``"beginning"`` (0) or ``"end"`` (the head now).
    :param event_types: only these event types (the position still moves over the others).
    :param aggregate_types: only these aggregate types.
    :param page_size: events per read.
    :param live: after catching up, wait for new events (``False``: stop at the head).
    :param wake: ``"auto"`` uses a change stream where the deployment has one and polls
        otherwise; ``"change_stream"`` requires one; ``"poll"`` never opens one.
    :param poll_interval: seconds between reads while caught up without a change stream (and
        the longest wait with one, as a safety net).
    :param gap_timeout: seconds a hole may stay open before it is recorded as a permanent gap.
        Default: 0 for ``transactional`` positions; for ``preallocated`` ones the store's
        transaction time budget plus 5 s, the longest an append can take from reserving its
        positions to committing.
    :param on_gap: called with each permanent gap's positions, once.
    """

    def __init__(
        self,
        store: MongoEventStore,
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
    ) -> None:
        if wake not in ("auto", "change_stream", "poll"):
            raise ConfigurationError(
                f"wake must be 'auto', 'change_stream' or 'poll', not {wake!r}"
            )
        if not poll_interval > 0:
            raise ConfigurationError("poll_interval must be positive")
        if gap_timeout is not None and gap_timeout < 0:
            raise ConfigurationError("gap_timeout must be >= 0")
        if not (start in ("beginning", "end") or isinstance(start, int)):
            raise ConfigurationError(
                f"start must be a position, 'beginning' or 'end', not {start!r}"
            )
        self._store = store
        self._start = start
        self.position = 0 if start in ("beginning", "end") else check_int(start, "start")
        self._event_types = None if event_types is None else set(check_types(event_types))
        self._aggregate_types = (
            None if aggregate_types is None else set(check_types(aggregate_types))
        )
        self._page_size = check_positive(page_size, "page_size")
        self._live = live
        self._wake_mode = wake
        self._poll_interval = poll_interval
        self._gap_timeout = gap_timeout
        self._on_gap = on_gap
        self.gaps: list[int] = []
        """Every permanent gap this subscription passed, in order."""
        self._missing_since: dict[int, float] = {}
        self._woken = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self.watching = False
        """Whether a change stream is open and waking this subscription."""
        self._closed = False
        self._started = False

    # -- the public iterator -----------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self._events()

    def __iter__(self) -> Any:
        raise TypeError(
            "a subscription is asynchronous: use `async for event in store.subscribe(): ...`"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "watching" if self.watching else "open"
        return f"<CatchUpSubscription at position {self.position:,}, {state}>"

    async def _events(self) -> AsyncIterator[StoredEvent]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for event in batch.events:
                    yield event

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
        self._woken.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        self.watching = False

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reading -----------------------------------------------------------------------------

    async def batches(self) -> AsyncGenerator[Batch, None]:
        """The subscription as batches (what :class:`Subscriber` checkpoints after)."""
        if self._started:
            raise SubscriptionError("a subscription is iterated once; subscribe again")
        self._started = True
        store = self._store
        pending: asyncio.Future[list[dict[str, Any]]] | None = None
        try:
            log = await self._retrying(store._log)
            if self._start == "end":
                self.position = await self._retrying(log.head)
            if self._gap_timeout is None:
                transactional = store.position_strategy == "transactional"
                self._gap_timeout = 0.0 if transactional else store._time_budget + _GAP_MARGIN
            if self._live and self._wake_mode != "poll":
                await self._open_watcher()
            size = self._page_size
            while not self._closed:
                if pending is None:
                    pending = asyncio.ensure_future(log.page(self.position, size))
                try:
                    docs = await pending
                except EventlabError as exc:
                    await self._back_off(exc)
                    continue
                finally:
                    pending = None
                deliver, gaps, blocked = self._contiguous(docs)
                if deliver or gaps:
                    self.position = max(([deliver[-1]["position"]] if deliver else []) + gaps)
                full = len(docs) == size and not blocked
                if full:  # history: the next page is read while this one is handled
                    pending = asyncio.ensure_future(log.page(self.position, size))
                if deliver or gaps:
                    self._report(gaps)
                    events = tuple(e for e in map(from_document, deliver) if self._wanted(e))
                    yield Batch(events, self.position, tuple(gaps))
                if full or self._closed:
                    continue
                if blocked:  # a hole that may still fill: look again soon
                    await self._wait(min(self._poll_interval, 0.05))
                    continue
                await self._note_reserved(log)
                if not self._live:
                    if not self._missing_since or self._unresolved_for() >= self._gap_timeout:
                        return  # caught up (what is still open at the head is not passed)
                    await self._wait(min(self._poll_interval, 0.05))
                    continue
                await self._wait(self._poll_interval)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
            await self.aclose()

    def _unresolved_for(self) -> float:
        first = self._missing_since.get(self.position + 1)
        return 0.0 if first is None else time.monotonic() - first

    def _contiguous(
        self, docs: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[int], bool]:
        """The documents that continue the log without a hole, the holes found permanent on
        the way, and whether a hole that may still fill stopped the page."""
        gap_timeout = self._gap_timeout or 0.0
        deliver: list[dict[str, Any]] = []
        gaps: list[int] = []
        expected = self.position + 1
        now = time.monotonic()
        for doc in docs:
            position = doc["position"]
            if position > expected:
                hole = range(expected, position)
                for missing in hole:
                    self._missing_since.setdefault(missing, now)
                if gap_timeout > 0 and now - self._missing_since[expected] < gap_timeout:
                    return deliver, gaps, True
                gaps.extend(hole)
            deliver.append(doc)
            expected = position + 1
        for done in [p for p in self._missing_since if p < expected]:
            del self._missing_since[done]
        return deliver, gaps, False

    async def _note_reserved(self, log: Any) -> None:
        # Positions handed out but not visible yet: their clock starts now, not when a later
        # event shows up above them (which would add gap_timeout to that event's latency).
        try:
            head = await log.head()
        except EventlabError:
            return
        now = time.monotonic()
        for missing in range(self.position + 1, min(head, self.position + 10_000) + 1):
            self._missing_since.setdefault(missing, now)

    def _wanted(self, event: StoredEvent) -> bool:
        if self._event_types is not None and event.event_type not in self._event_types:
            return False
        return self._aggregate_types is None or event.aggregate_type in self._aggregate_types

    def _report(self, gaps: list[int]) -> None:
        if not gaps:
            return
        self.gaps.extend(gaps)
        logger.warning("subscription passed permanent gap(s) at position(s) %s", _ranges(gaps))
        if self._on_gap is not None:
            self._on_gap(list(gaps))

    async def _wait(self, seconds: float) -> None:
        self._woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)

    async def _back_off(self, exc: Exception) -> None:
        logger.warning("subscription read failed (%s); retrying", exc)
        await self._wait(min(_MAX_BACKOFF, self._poll_interval))

    async def _retrying(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """A read the subscription cannot do without: retried through server outages."""
        while True:
            try:
                return await call()
            except ConnectionFailedError as exc:
                if self._closed:
                    raise
                await self._back_off(exc)

    # -- waking ------------------------------------------------------------------------------

    async def _open_watcher(self) -> None:
        opened = asyncio.get_running_loop().create_future()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(opened))
        try:
            self.watching = await asyncio.wait_for(opened, 10)
        except TimeoutError:
            self.watching = False
        if not self.watching and self._wake_mode == "change_stream":
            raise SubscriptionError(
                "this deployment has no change streams (a standalone server?); "
                "use wake='poll' or 'auto'"
            )

    async def _watch(self, opened: asyncio.Future[bool]) -> None:
        """Wake the reader on every insert into the events collection, reopening the change
        stream after errors (it only wakes; every event is still read from the log)."""
        events = self._store._schema.events
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"_id": 1}},
        ]
        while not self._closed:
            try:
                async with await events.watch(pipeline, max_await_time_ms=1000) as stream:
                    if not opened.done():
                        opened.set_result(True)
                    self.watching = True
                    self._woken.set()  # anything committed while (re)opening is read now
                    while not self._closed:
                        change = await stream.try_next()
                        if change is not None:
                            self._woken.set()
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                self.watching = False
                if not opened.done():  # no change streams here: poll
                    opened.set_result(False)
                    return
                logger.info("change stream closed (%s); reopening", exc)
                await asyncio.sleep(min(_MAX_BACKOFF, self._poll_interval))


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


Handler = Callable[..., Awaitable[None]]
BatchHandler = Callable[[tuple[StoredEvent, ...], SessionProvider | None], Awaitable[None]]


class Subscriber:
    """Runs ``handler`` over the log under the checkpoint ``name``.

    ``on_batch=`` instead of ``handler``: ``await on_batch(events, uow)`` once per batch (``uow``
    is ``None`` at least once), for handlers that write a batch at a time (projections).

    ``mode="exactly_once"``: ``await handler(event, uow)`` for each event of a batch and the new
    checkpoint commit in **one transaction** (pass ``uow`` to the repositories and stores the
    handler writes with). A crash or cancellation at any point leaves either the whole batch's
    effects and its checkpoint, or neither; the checkpoint update is conditional on the position
    read, so two instances of one subscriber cannot both apply a batch.

    ``mode="at_least_once"``: ``await handler(event)``, and the checkpoint is saved after each
    batch. A crash between the two repeats the batch on restart: for handlers with external
    effects (send an email, call an API), which must then be idempotent.
    """

    def __init__(
        self,
        store: MongoEventStore,
        name: str,
        handler: Handler | None,
        *,
        on_batch: BatchHandler | None = None,
        mode: DeliveryMode = "exactly_once",
        checkpoints: MongoCheckpointStore | None = None,
        start: Start = "beginning",
        batch_size: int = 100,
        **subscription_options: Any,
    ) -> None:
        if (handler is None) == (on_batch is None):
            raise ConfigurationError("give a handler (per event) or on_batch (per batch)")
        if mode not in ("exactly_once", "at_least_once"):
            raise ConfigurationError(
                f"mode must be 'exactly_once' or 'at_least_once', not {mode!r}"
            )
        self.store = store
        self.name = name
        self.handler = handler
        self.on_batch = on_batch
        self.mode = mode
        self.checkpoints = checkpoints or MongoCheckpointStore(store.connection)
        self._start = start
        self._batch_size = check_positive(batch_size, "batch_size")
        self._options = subscription_options
        self.position: int | None = None
        """The checkpoint as last committed (``None`` before the first run)."""
        self.handled = 0
        self._subscription: CatchUpSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Follow the log from the checkpoint until :meth:`stop` (or, with
        ``until_caught_up``, until the head as it is when the run reaches it)."""
        stored = await self.checkpoints.get(self.name)
        if stored is not None:
            start: Start = stored.position
        elif self._start == "end":
            start = "end"
        else:
            start = self._start
        subscription = CatchUpSubscription(
            self.store,
            start=start,
            page_size=self._batch_size,
            live=not until_caught_up,
            **self._options,
        )
        self._subscription = subscription
        self.position = stored.position if stored is not None else None
        async with contextlib.aclosing(subscription.batches()) as batches:
            async for batch in batches:
                await self._apply(batch)

    async def _apply(self, batch: Batch) -> None:
        expected = self.position or 0
        if self.mode == "exactly_once":

            async def work(uow: SessionProvider) -> None:
                if self.on_batch is not None:
                    await self.on_batch(batch.events, uow)
                else:
                    assert self.handler is not None
                    for event in batch.events:
                        await self.handler(event, uow)
                await self.checkpoints.save(
                    self.name, batch.position, expected=expected, gaps=batch.gaps, uow=uow
                )

            await run_unit_of_work(self.store.connection, work)
        else:
            if self.on_batch is not None:
                await self.on_batch(batch.events, None)
            else:
                assert self.handler is not None
                for event in batch.events:
                    await self.handler(event)
            await self.checkpoints.save(self.name, batch.position, gaps=batch.gaps)
        self.position = batch.position
        self.handled += len(batch.events)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task."""
        if self._task is not None and not self._task.done():
            raise SubscriptionError(f"subscriber {self.name!r} is already running")
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in hand (cancelled after ``timeout``: its transaction is then
        aborted, and the batch is applied again by the next run)."""
        subscription, task = self._subscription, self._task
        if subscription is not None:
            await subscription.aclose()
        if task is None:
            return
        self._task = None
        error = await finish(task, timeout)
        if error is not None:
            raise error

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def lag(self) -> int:
        """Positions between the checkpoint and the head of the log."""
        head = await (await self.store._log()).head()
        return max(0, head - (await self.checkpoints.position(self.name)))
