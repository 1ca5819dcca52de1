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
from dataclasses import replace
from typing import Any

from .._core.checkpoint_rules import check_lease
from .._core.checks import check_name, check_page_size
from .._core.errors import (
    CheckpointConflictError,
    ConfigurationError,
    ConsumerBusyError,
    EventlabError,
    InternalSignal,
)
from .._core.race_points import SUBSCRIBER_CLAIMED as CLAIMED
from .._core.race_points import SUBSCRIBER_SUBSCRIBING as SUBSCRIBING
from .._core.tasks import ended, within
from ..ports import CheckpointStore, EventStore
from .catch_up import CatchUpSubscription
from .delivery import BatchHandler, Delivery, DeliveryMode, Handler
from .leases import NameLease
from .start import Start, start_position
from .supervision import ConsumerHealth, Runs

logger = logging.getLogger("eventlab.subscriptions")

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
        # Checked now, not at the first run: a typo fails at construction.
        try:  # checked now, not when the run starts
            CatchUpSubscription(store.log, start=start, **subscription_options)
        except TypeError as exc:  # an option a subscription does not take
            raise ConfigurationError(
                f"not an option of a subscription: {str(exc).rpartition(': ')[2] or exc}"
            ) from None
        self._options = subscription_options
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This instance's name in the lease and the checkpoint."""
        self.position: int | None = None
        """The checkpoint as last committed (``None`` before the first run)."""
        self.handled = 0
        self._lease = NameLease(self.checkpoints, self.name, self.owner, check_lease(lease))
        self._subscription: CatchUpSubscription | None = None
        self._runs = Runs("subscriber", self.name)
        self._delivery = Delivery(
            self.name, self.owner, mode, handler, on_batch, self.checkpoints, store.backend
        )
        self._lost = False

    @property
    def takeovers(self) -> int:
        """How many times this instance took the name over from a process that died."""
        return self._lease.takeovers

    async def run(self) -> None:
        """Follow the log from the checkpoint until :meth:`stop`.

        Stands by while another process runs this name. Supervised like
        :class:`~eventlab.OutboxRelay`: after an error it may get over (a lost connection, a
        batch's transaction out of time, an unknown commit outcome) it backs off, reads its
        checkpoint again and goes on; an error that will fail the same way every time (a
        missing privilege, a handler's own exception) ends the run and is raised.
        :meth:`health` shows which.
        """
        await self._run(self._runs.new_run(), to_the_head=False)

    async def run_until_caught_up(self) -> None:
        """Follow the log from the checkpoint to the head as it is when the run starts, and
        return; every error is raised. Waits for another process that runs this name at most
        two lease periods, then raises :class:`~eventlab.ConsumerBusyError`."""
        await self._run(self._runs.new_run(), to_the_head=True)

    async def _run(self, stop: asyncio.Event, *, to_the_head: bool) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._run_once(stop, to_the_head)
                    return
                except (_LeaseLost, CheckpointConflictError) as exc:
                    if to_the_head:
                        raise ConsumerBusyError(self.name, None) from exc
                    logger.warning("subscriber %s lost its lease (%s); standing by", self.name, exc)
                except InternalSignal:  # for whoever runs this subscriber (a projector)
                    raise
                except Exception as exc:
                    await self._runs.after_error(exc, stop, to_the_head=to_the_head)
        finally:
            if self._runs.record.state != "failed":
                self._runs.record.state = "stopped"

    async def _run_once(self, stop: asyncio.Event, to_the_head: bool) -> None:
        # One session per run: its transactions are the ones a successor ends on takeover.
        async with self.store.backend.session() as session:
            claimed = await self._lease.claim(
                stop,
                session_id=self.store.backend.session_id(session),
                give_up_after=2 * self._lease.seconds if to_the_head else None,
                standing_by=self._standing_by,
            )
            if claimed:
                await self._follow(session, stop, to_the_head)

    def _standing_by(self) -> None:
        self._runs.record.state = "standing_by"

    async def _follow(self, session: Any, stop: asyncio.Event, to_the_head: bool) -> None:
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
                live=not to_the_head,
                **self._options,
            )
            self._subscription = subscription
            # After publishing it, not before: a stop() that came while this run was getting
            # here saw no subscription to close, and is seen now.
            if stop.is_set():
                return
            self.position = position
            self._runs.record.state = "following"
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
                    self._runs.record.success()
            if self._lost:
                raise _LeaseLost(f"{self.name}: the lease was taken over")
            self._runs.record.success()
        finally:
            if renewer is not None:
                renewer.cancel()
                await ended(renewer)
            await self._lease.release()

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
        def following_again() -> None:
            record = self._runs.record
            if record.backoff.failures and subscription.ready.is_set():
                record.success()  # following again, with no batch to show it yet

        async def lost() -> None:
            self._lost = True
            await subscription.aclose()

        await self._lease.keep(lost, tick=following_again)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (live, supervised: see :meth:`run`)."""
        return self._runs.start(lambda stop: self._run(stop, to_the_head=False))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the current run, at whatever moment it is: standing by, backing off, starting,
        or after the batch in hand (cancelled after ``timeout``: its transaction is then
        aborted, and the batch is applied again by the next run). Raises the error a started
        run failed with, if any."""
        await self._runs.stop(timeout, self._close_subscription)

    async def _close_subscription(self) -> None:
        if self._subscription is not None:
            await self._subscription.aclose()

    @property
    def running(self) -> bool:
        return self._runs.running

    async def health(self) -> ConsumerHealth:
        """State, counters, the last error and success, and the lag (as
        :meth:`OutboxRelay.health <eventlab.OutboxRelay.health>`)."""
        try:
            lag: int | None = await within(self.lag(), 5)
        except (EventlabError, TimeoutError):
            lag = None
        health = self._runs.record.health(self.name, self.position, self.handled, lag)
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
