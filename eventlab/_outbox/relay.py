"""The outbox relay: claims messages, publishes each only while it holds the claim, and keeps
going through server errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from .._core import telemetry as telemetry
from .._core.errors import ConfigurationError, EventlabError
from .._core.tasks import ended, finish, within
from ..ports import OutboxLag, OutboxMessage, OutboxStore

logger = logging.getLogger("eventlab.outbox")


class Publisher(Protocol):
    """Where a relay sends messages (a broker client, an HTTP webhook, a test double).

    ``publish`` may be cancelled: the relay cancels it when the claim's lease would end before
    it returns, so that no message is ever being published by two relays at once.
    """

    async def publish(self, message: OutboxMessage) -> None: ...


class LoggingPublisher:
    """Logs each message (for development)."""

    def __init__(self, logger_name: str = "eventlab.outbox.published") -> None:
        self._log = logging.getLogger(logger_name)

    async def publish(self, message: OutboxMessage) -> None:
        self._log.info("%s %s %s", message.event_type, message.message_id, message.payload)


class InMemoryPublisher:
    """Keeps published messages in a list (for notebooks and tests)."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []

    async def publish(self, message: OutboxMessage) -> None:
        self.published.append(message)


@dataclass(frozen=True, slots=True)
class RelayHealth:
    """A relay's state, for a health endpoint or a notebook cell."""

    worker_id: str
    running: bool
    published: int
    failed: int
    lost: int
    """Messages whose claim ended before the relay got to them (not published by it)."""
    consecutive_errors: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    """The end of the last poll that reached the server."""
    lag: OutboxLag | None
    """The outbox's backlog, read when the health was asked for (``None``: unreachable)."""

    @property
    def healthy(self) -> bool:
        """Running, and the last poll reached the server."""
        return self.running and self.consecutive_errors == 0


class _Lease:
    """What one claim holds, and until when, on this process's monotonic clock.

    The deadline is measured from the moment *before* the claim (or renewal) was sent, so it is
    never later than the lease the server granted: the server starts its lease later.
    """

    def __init__(self, messages: list[OutboxMessage], deadline: float, margin: float) -> None:
        self.open: dict[str, OutboxMessage] = {m.message_id: m for m in messages}
        self.deadline = deadline
        self.margin = margin
        self.timeout: asyncio.Timeout | None = None

    def extend(self, held: set[str], deadline: float) -> None:
        for message_id in list(self.open):
            if message_id not in held:
                del self.open[message_id]
        self.deadline = deadline
        if self.timeout is not None:
            self.timeout.reschedule(deadline - self.margin)


class OutboxRelay:
    """An asyncio worker: claim a batch, publish each message, mark it; repeat until stopped.

    While a batch is in hand the relay renews its lease every ``renew_every`` seconds (default:
    a third of the lease). Before each message it checks that the claim is still held with time
    to spare, and a publish still running when the lease is about to end is cancelled and
    counted as a failed attempt: a relay never publishes a message it no longer owns.

    ``await relay.run()`` runs in the current task; ``relay.start()`` runs it in a new task and
    ``await relay.stop()`` stops it (the message in hand is finished, the rest released).
    Server errors never end the relay: they are logged, kept in :meth:`health`, and retried
    with exponential backoff up to ``max_backoff`` seconds.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        publisher: Publisher,
        *,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease: float = 30.0,
        poll_interval: float = 0.5,
        renew_every: float | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1")
        if not lease > 0 or not poll_interval > 0:
            raise ConfigurationError("lease and poll_interval must be positive")
        self.outbox = outbox
        self.publisher = publisher
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.lease = float(lease)
        self.poll_interval = poll_interval
        self.renew_every = renew_every if renew_every is not None else self.lease / 3
        if not 0 < self.renew_every < self.lease:
            raise ConfigurationError("renew_every must be between 0 and the lease")
        # Never start or continue a publish in the last part of a lease: the time a renewal or
        # a mark may take to reach the server.
        self.margin = min(self.lease * 0.2, 2.0)
        self.max_backoff = max_backoff
        self.published = 0
        self.failed = 0
        self.lost = 0
        self._consecutive_errors = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_success_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- one batch ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim and process one batch; returns how many messages were claimed."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        asked = time.time_ns()
        batch = await self.outbox.claim(self.worker_id, self.batch_size, self.lease)
        if not batch:
            return 0  # an idle poll leaves no span: one every poll_interval would drown a trace
        with telemetry.span(
            "receive outbox",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "receive",
                "messaging.operation.name": "claim",
                "messaging.batch.message_count": len(batch),
                "eventlab.relay": self.worker_id,
            },
            start_time=asked,
        ):
            pass
        lease = _Lease(batch, sent + self.lease, self.margin)
        renewer = loop.create_task(self._keep_renewing(lease))
        try:
            for message in batch:
                if self._stopping.is_set():
                    break
                if (
                    message.message_id not in lease.open
                    or loop.time() >= lease.deadline - self.margin
                ):
                    self._lose(1)
                    lease.open.pop(message.message_id, None)
                    continue
                await self._publish_one(message, lease)
        finally:
            renewer.cancel()
            await ended(renewer)
            if lease.open:  # stopping, or cancelled: hand back what was not attempted
                await self._release(list(lease.open.values()))
        return len(batch)

    async def _publish_one(self, message: OutboxMessage, lease: _Lease) -> None:
        # The span continues the trace that saved the message (its headers' trace context),
        # and the publisher is handed that span's context, for its own instrumentation.
        with telemetry.span(
            f"send {message.event_type}",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": message.event_type,
                "messaging.message.id": message.message_id,
            },
            kind="producer",
            parent=telemetry.parent_from(message.headers),
        ) as span:
            traced = telemetry.trace_context()
            if traced:
                message = replace(message, headers={**message.headers, **traced})
            await self._publish_traced(message, lease, span)

    async def _publish_traced(self, message: OutboxMessage, lease: _Lease, span: Any) -> None:
        loop = asyncio.get_running_loop()
        error: str | None = None
        try:
            async with asyncio.timeout_at(lease.deadline - self.margin) as timeout:
                lease.timeout = timeout
                try:
                    await self.publisher.publish(message)
                finally:
                    lease.timeout = None
        except TimeoutError:
            if not timeout.expired():
                error = "TimeoutError: the publisher timed out"
            else:
                error = (
                    f"LeaseExpired: still publishing {self.lease:g} s lease's end "
                    f"(at {loop.time() - lease.deadline:+.3f} s); cancelled"
                )
        except Exception as exc:  # a publisher failure is data, not a crash of the relay
            error = f"{type(exc).__name__}: {exc}"
        lease.open.pop(message.message_id, None)
        if error is None:
            if await self.outbox.mark_published([message]):
                self.published += 1
            else:  # pragma: no cover - only if the lease ran out between publish and mark
                self._lose(1)
        else:
            self.failed += 1
            if span is not None:
                span.set_attribute("error.type", error.split(":", 1)[0])
            if await self.outbox.mark_failed(message, error) is None:
                self._lose(1)  # pragma: no cover - as above

    def _lose(self, count: int) -> None:
        self.lost += count
        found = telemetry.instruments()
        if found is not None:
            found.lease_losses.add(count, {"eventlab.relay": self.worker_id})

    async def _keep_renewing(self, lease: _Lease) -> None:
        loop = asyncio.get_running_loop()
        while lease.open:
            await asyncio.sleep(self.renew_every)
            sent = loop.time()
            try:
                held = await self.outbox.renew(list(lease.open.values()), self.lease)
            except EventlabError as exc:
                # Not renewed: the deadline stays where it was, and the publish in flight is
                # cancelled when it comes. Try again at the next tick.
                logger.warning(
                    "outbox relay %s: renewing the lease failed: %s", self.worker_id, exc
                )
                continue
            lease.extend(held, sent + self.lease)

    async def _release(self, messages: list[OutboxMessage]) -> None:
        try:
            await within(self.outbox.release(messages), 5)
        except (EventlabError, TimeoutError) as exc:  # the leases end by themselves
            logger.warning("outbox relay %s: releasing claims failed: %s", self.worker_id, exc)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until :meth:`stop` is called; server errors are retried with backoff."""
        while not self._stopping.is_set():
            try:
                claimed = await self.run_once()
            except Exception as exc:  # any failure of a poll; only cancellation ends the loop
                self._record_error(exc)
                delay = min(self.max_backoff, self.poll_interval * 2**self._consecutive_errors)
                await self._sleep(delay)
                continue
            self._consecutive_errors = 0
            self._last_success_at = datetime.now(UTC)
            if claimed == 0:
                await self._sleep(self.poll_interval)

    def _record_error(self, exc: Exception) -> None:
        self._consecutive_errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"[:500]
        self._last_error_at = datetime.now(UTC)
        logger.warning(
            "outbox relay %s: %s (failure %d in a row); retrying",
            self.worker_id,
            self._last_error,
            self._consecutive_errors,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await within(self._stopping.wait(), seconds)

    def start(self) -> asyncio.Task[None]:
        """Run in a background task."""
        if self._task is not None and not self._task.done():
            raise ConfigurationError(f"relay {self.worker_id} is already running")
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self.run())
        return self._task

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop: finish the message in hand and release the rest of the batch.

        A publish still running after ``timeout`` seconds is cancelled (its message is then
        released, or due again when its lease ends).
        """
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        error = await finish(task, timeout, after_cancel=10.0)
        if error is not None:  # pragma: no cover - run() catches all
            raise error

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _record_backlog(self, lag: OutboxLag | None) -> None:
        """The outbox's backlog as metrics (with OpenTelemetry): due and dead messages, the
        age of the oldest due one."""
        found = telemetry.instruments()
        if found is None or lag is None:
            return
        try:
            counts = await within(self.outbox.counts(), 5)
        except (EventlabError, TimeoutError):
            counts = {}
        found.outbox_messages.set(lag.due, {"eventlab.outbox.status": "due"})
        found.outbox_messages.set(counts.get("dead", 0), {"eventlab.outbox.status": "dead"})
        found.outbox_oldest_age.set(lag.oldest_due_seconds)

    async def health(self) -> RelayHealth:
        """The relay's counters, its last error and success, and the outbox's lag."""
        try:
            lag: OutboxLag | None = await within(self.outbox.lag(), 5)
        except (EventlabError, TimeoutError):
            lag = None
        await self._record_backlog(lag)
        return RelayHealth(
            worker_id=self.worker_id,
            running=self.running,
            published=self.published,
            failed=self.failed,
            lost=self.lost,
            consecutive_errors=self._consecutive_errors,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_success_at=self._last_success_at,
            lag=lag,
        )
