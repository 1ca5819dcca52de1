"""Subscribers: a handler run over the log under a named checkpoint and a lease.

:class:`Subscriber` follows the log with a :class:`~eventlab.CatchUpSubscription` and runs a
handler in one of two delivery modes: ``"exactly_once"`` (the handler's writes and the
checkpoint commit in one transaction) or ``"at_least_once"`` (the checkpoint is saved after the
handler ran). One process runs a name at a time, under a lease; the others stand by and take
over within a lease period when it stops or dies (docs/positions.md, "Crash takeover").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from .._core import telemetry as telemetry
from .._core.checks import check_name, check_page_size
from .._core.domain import utc_now
from .._core.errors import (
    CheckpointConflictError,
    ConfigurationError,
    ConsumerBusyError,
    EventlabError,
    InternalSignal,
    SubscriptionError,
)
from .._core.race_points import BATCH_HANDLED
from .._core.race_points import SUBSCRIBER_CLAIMED as CLAIMED
from .._core.race_points import SUBSCRIBER_SUBSCRIBING as SUBSCRIBING
from .._core.records import StoredEvent
from .._core.tasks import ended, finish, within, woken
from ..ports import CheckpointStore, EventStore, UnitOfWork
from .batches import Batch
from .catch_up import CatchUpSubscription
from .start import Start, start_position
from .supervision import ConsumerHealth, Supervision, worth_retrying

logger = logging.getLogger("eventlab.subscriptions")

DeliveryMode = Literal["exactly_once", "at_least_once"]
Handler = Callable[..., Awaitable[None]]
BatchHandler = Callable[[tuple[StoredEvent, ...], UnitOfWork | None], Awaitable[None]]

DEFAULT_LEASE = 3.0
"""Seconds a consumer's lease lasts; it is renewed every third of it."""


class _LeaseLost(InternalSignal):
    """Another process took this consumer's lease over: stand by."""


class Subscriber:
    """Runs ``handler`` over the log under the checkpoint ``name``.

    ``on_batch=`` instead of ``handler``: ``await on_batch(events, uow)`` once per batch (``uow``
    is ``None`` at least once), for handlers that write a batch at a time (projections).

    ``mode="exactly_once"``: ``await handler(event, uow)`` for each event of a batch and the new
    checkpoint commit in **one transaction** (pass ``uow`` to the repositories and stores the
    handler writes with). A crash or cancellation at any point leaves either the whole batch's
    effects and its checkpoint, or neither.

    ``mode="at_least_once"``: ``await handler(event)``, and the checkpoint is saved after each
    batch. A crash between the two repeats the batch on restart: for handlers with external
    effects (send an email, call an API), which must then be idempotent.

    One process runs a name at a time: :meth:`run` takes the name's lease (``lease`` seconds,
    renewed every third of it) and stands by while another live process holds it; a process
    that dies is taken over once its lease ends, its open transaction ended on the server.

    ``start`` says where the first run of this name starts (``"end"``: after every settled
    position); that place is stored as the checkpoint at once, and from then on the stored
    checkpoint, at any position (0 included), always wins over ``start``.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler | None,
        *,
        on_batch: BatchHandler | None = None,
        mode: DeliveryMode = "exactly_once",
        checkpoints: CheckpointStore | None = None,
        start: Start = "beginning",
        batch_size: int = 100,
        lease: float = DEFAULT_LEASE,
        **subscription_options: Any,
    ) -> None:
        if (handler is None) == (on_batch is None):
            raise ConfigurationError("give a handler (per event) or on_batch (per batch)")
        for given in (handler, on_batch):
            if given is not None and not callable(given):
                raise ConfigurationError(f"a handler must be callable, got {given!r:.60}")
        if mode not in ("exactly_once", "at_least_once"):
            raise ConfigurationError(
                f"mode must be 'exactly_once' or 'at_least_once', not {mode!r}"
            )
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise ConfigurationError(f"lease must be a positive number of seconds: {lease!r}")
        self.store = store
        self.name = check_name(name, "subscriber name")
        self.handler = handler
        self.on_batch = on_batch
        self.mode = mode
        self.checkpoints = checkpoints or store.backend.checkpoints()
        self._start = start
        self._batch_size = check_page_size(batch_size, "batch_size")
        self._lease = float(lease)
        # Checked now, not at the first run: a typo fails at construction.
        CatchUpSubscription(store.log, start=start, **subscription_options)
        self._options = subscription_options
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This instance's name in the lease and the checkpoint."""
        self.position: int | None = None
        """The checkpoint as last committed (``None`` before the first run)."""
        self.handled = 0
        self.takeovers = 0
        """How many times this instance took the name over from a process that died."""
        self._subscription: CatchUpSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._supervision = Supervision()
        self._delivery = _Delivery(self)
        self._lost = False

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Follow the log from the checkpoint until :meth:`stop` (or, with
        ``until_caught_up``, until the head as it is when the run starts).

        Stands by while another process runs this name; ``until_caught_up`` waits for it at
        most two lease periods, then raises :class:`~eventlab.ConsumerBusyError`.

        A live run is supervised like :class:`~eventlab.OutboxRelay`: after an error it may
        get over (a lost connection, a batch's transaction out of time, an unknown commit
        outcome) it backs off, reads its checkpoint again and goes on; an error that will
        fail the same way every time (a missing privilege, a handler's own exception) ends
        the run and is raised. :meth:`health` shows which. A run ``until_caught_up`` raises
        every error.
        """
        await self._run(self._new_run(), until_caught_up)

    def _new_run(self) -> asyncio.Event:
        """The stop signal of the run about to start: :meth:`stop` sets the current one."""
        self._stop = asyncio.Event()
        return self._stop

    async def _run(self, stop: asyncio.Event, until_caught_up: bool) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._run_once(stop, until_caught_up)
                    return
                except (_LeaseLost, CheckpointConflictError) as exc:
                    if until_caught_up:
                        raise ConsumerBusyError(self.name, None) from exc
                    logger.warning("subscriber %s lost its lease (%s); standing by", self.name, exc)
                except InternalSignal:  # for whoever runs this subscriber (a projector)
                    raise
                except Exception as exc:
                    final = until_caught_up or not worth_retrying(exc)
                    delay = self._supervision.error(exc, final=final)
                    if final:
                        raise
                    logger.warning(
                        "subscriber %s: %s (failure %d in a row); retrying in %.2g s",
                        self.name,
                        self._supervision.last_error,
                        self._supervision.backoff.failures,
                        delay,
                    )
                    await woken(stop, delay)
        finally:
            if self._supervision.state != "failed":
                self._supervision.state = "stopped"

    async def _run_once(self, stop: asyncio.Event, until_caught_up: bool) -> None:
        # One session per run: its transactions are the ones a successor ends on takeover.
        async with self.store.backend.session() as session:
            if await self._claim(session, stop, until_caught_up):
                await self._follow(session, stop, until_caught_up)

    async def _claim(self, session: Any, stop: asyncio.Event, until_caught_up: bool) -> bool:
        """Take the lease, standing by while another live process holds it; ``False`` if
        stopped first."""
        loop = asyncio.get_running_loop()
        gave_up_at = loop.time() + 2 * self._lease
        announced = False
        while not stop.is_set():
            grant = await self.checkpoints.claim(
                self.name,
                self.owner,
                lease=self._lease,
                session_id=self.store.backend.session_id(session),
                holder=f"{socket.gethostname()} pid {os.getpid()}",
            )
            if grant.granted:
                if grant.took_over:
                    self.takeovers += 1
                    logger.info("subscriber %s took over from a stopped process", self.name)
                return True
            if until_caught_up and loop.time() >= gave_up_at:
                raise ConsumerBusyError(self.name, grant.holder)
            if not announced:
                logger.info("subscriber %s: %s runs it; standing by", self.name, grant.holder)
                announced = True
            self._supervision.state = "standing_by"
            await woken(stop, self._lease / 6)
        return False

    async def _follow(self, session: Any, stop: asyncio.Event, until_caught_up: bool) -> None:
        self._lost = False
        renewer: asyncio.Task[None] | None = None
        try:
            if CLAIMED.armed:
                await CLAIMED.reach()
            position = await self._starting_position()
            if SUBSCRIBING.armed:
                await SUBSCRIBING.reach()
            subscription = CatchUpSubscription(
                self.store.log,
                start=position,
                page_size=self._batch_size,
                live=not until_caught_up,
                **self._options,
            )
            self._subscription = subscription
            # After publishing it, not before: a stop() that came while this run was getting
            # here saw no subscription to close, and is seen now.
            if stop.is_set():
                return
            self.position = position
            self._supervision.state = "following"
            renewer = asyncio.get_running_loop().create_task(self._keep_lease(subscription))
            async with contextlib.aclosing(subscription.batches(nest_reads=True)) as batches:
                async for batch in batches:
                    if self._lost:
                        break
                    await self._delivery.apply(
                        batch, self.position or 0, session, subscription.head_seen
                    )
                    self.position = batch.position
                    self.handled += len(batch.events)
                    self._supervision.success()
            if self._lost:
                raise _LeaseLost(f"{self.name}: the lease was taken over")
            self._supervision.success()
        finally:
            if renewer is not None:
                renewer.cancel()
                await ended(renewer)
            await self.checkpoints.release(self.name, self.owner)

    async def _starting_position(self) -> int:
        """The stored checkpoint (at any position, 0 included: it always wins over ``start``),
        or, on the first run of this name, where ``start`` says, stored at once as the
        checkpoint: a restart before the first batch starts there too, not at a later end."""
        stored = await self.checkpoints.get(self.name)
        if stored is not None:
            return stored.position
        position = await start_position(self.store.log, self._start)
        await self.checkpoints.save(self.name, position, expected=0, owner=self.owner)
        return position

    async def _keep_lease(self, subscription: CatchUpSubscription) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            if self._supervision.backoff.failures and subscription.ready.is_set():
                self._supervision.success()  # following again, with no batch to show it yet
            try:
                held = await self.checkpoints.renew(self.name, self.owner, lease=self._lease)
            except EventlabError as exc:  # not renewed this time: the next tick tries again
                logger.warning("subscriber %s: renewing its lease failed: %s", self.name, exc)
                continue
            if not held:
                self._lost = True
                await subscription.aclose()
                return

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (live, supervised: see :meth:`run`)."""
        if self._task is not None and not self._task.done():
            raise SubscriptionError(f"subscriber {self.name!r} is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(self._new_run(), False))
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the current run, at whatever moment it is: standing by, backing off, starting,
        or after the batch in hand (cancelled after ``timeout``: its transaction is then
        aborted, and the batch is applied again by the next run). Raises the error a started
        run failed with, if any."""
        self._stop.set()
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

    async def health(self) -> ConsumerHealth:
        """State, counters, the last error and success, and the lag (as
        :meth:`OutboxRelay.health <eventlab.OutboxRelay.health>`)."""
        try:
            lag: int | None = await within(self.lag(), 5)
        except (EventlabError, TimeoutError):
            lag = None
        health = self._supervision.health(self.name, self.position, self.handled, lag)
        subscription = self._subscription
        if subscription is not None and not subscription.closed:
            # Reads the subscription itself is trying again count too.
            failing = subscription.consecutive_errors
            if failing:
                return replace(health, consecutive_errors=health.consecutive_errors + failing)
        return health

    async def lag(self) -> int:
        """Positions between the checkpoint and the head of the log."""
        head = await self.store.log.head()
        position: int = await self.checkpoints.position(self.name)
        return max(0, head.position - position)


class _Delivery:
    """How a batch reaches the handler and the checkpoint: in one transaction
    (``exactly_once``), or the handler first and the checkpoint after (``at_least_once``);
    traced, and its lag measured."""

    def __init__(self, subscriber: Subscriber) -> None:
        self._subscriber = subscriber

    async def apply(self, batch: Batch, expected: int, session: Any, head_seen: int) -> None:
        """Deliver ``batch`` and move the checkpoint from ``expected`` to its end."""
        subscriber = self._subscriber
        with telemetry.span(
            f"process {subscriber.name}",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.consumer.group.name": subscriber.name,
                "messaging.batch.message_count": len(batch.events),
                "eventlab.delivery": subscriber.mode,
                "eventlab.checkpoint.position": batch.position,
            },
            kind="consumer",
            links=telemetry.links_from(event.metadata for event in batch.events),
            # From the first read that found the batch: its reads are its first children.
            start_time=min((read.start for read in batch.reads), default=None),
        ):
            telemetry.emit(batch.reads)
            await self._commit(batch, expected, session)
        behind = head_seen - batch.position
        last = batch.events[-1].recorded_at if batch.events else None
        seconds = (utc_now() - last).total_seconds() if behind > 0 and last else 0.0
        telemetry.consumer_lag(subscriber.name, behind, seconds)

    async def _commit(self, batch: Batch, expected: int, session: Any) -> None:
        subscriber = self._subscriber
        checkpoints = subscriber.checkpoints
        if subscriber.mode == "exactly_once":

            async def work(uow: UnitOfWork) -> None:
                await self._handle(batch, uow)
                if BATCH_HANDLED.armed:
                    await BATCH_HANDLED.reach()
                await checkpoints.save(
                    subscriber.name,
                    batch.position,
                    expected=expected,
                    gaps=batch.gaps,
                    owner=subscriber.owner,
                    uow=uow,
                )

            await subscriber.store.backend.run(work, session=session)
        else:
            await self._handle(batch, None)
            if BATCH_HANDLED.armed:
                await BATCH_HANDLED.reach()
            await checkpoints.save(
                subscriber.name, batch.position, gaps=batch.gaps, owner=subscriber.owner
            )

    async def _handle(self, batch: Batch, uow: UnitOfWork | None) -> None:
        on_batch, handler = self._subscriber.on_batch, self._subscriber.handler
        if on_batch is not None:
            await on_batch(batch.events, uow)
            return
        assert handler is not None
        for event in batch.events:
            if uow is not None:
                await handler(event, uow)
            else:
                await handler(event)
