"""The outbox relay: claims messages, publishes each only while it holds the claim, and keeps
going through server errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .._core import telemetry as telemetry
from .._core.errors import ConfigurationError, EventlabError
from .._core.tasks import finish, within
from ..ports import OutboxLag, OutboxStore
from .claimed_batches import ClaimedBatches
from .publishers import Publisher

logger = logging.getLogger("eventlab.outbox")


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
        self.max_backoff = max_backoff
        self.published = 0
        self.failed = 0
        self.lost = 0
        """Messages whose claim ended before the relay got to them (not published by it)."""
        self._batches = ClaimedBatches(
            outbox, publisher, self.worker_id, batch_size, self.lease, self.renew_every, self
        )
        self._consecutive_errors = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_success_at: datetime | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Claim and process one batch; returns how many messages were claimed."""
        return await self._batches.run_once(self._stopping)

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
