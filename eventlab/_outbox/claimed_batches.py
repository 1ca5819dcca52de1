"""One claimed batch of the outbox relay: each message published only while the claim is
held with time to spare, the claim renewed while the batch is in hand, what was not attempted
handed back."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .._core import telemetry as telemetry
from .._core.errors import EventlabError
from .._core.tasks import ended, within
from ..ports import OutboxMessage, OutboxStore
from .publishers import Publisher

logger = logging.getLogger("eventlab.outbox")


class Counts(Protocol):
    """Where a relay counts what it did with the messages it claimed (the relay itself)."""

    published: int
    failed: int
    lost: int


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


@dataclass(slots=True)
class ClaimedBatches:
    """Claims a batch of ``worker_id``'s and publishes it (see :class:`~eventlab.OutboxRelay`
    for the rules), counting the outcomes in ``counts``."""

    outbox: OutboxStore
    publisher: Publisher
    worker_id: str
    batch_size: int
    lease: float
    renew_every: float
    counts: Counts
    margin: float = field(init=False)
    """Never start or continue a publish in the last part of a lease: the time a renewal or
    a mark may take to reach the server."""

    def __post_init__(self) -> None:
        self.margin = min(self.lease * 0.2, 2.0)

    async def run_once(self, stopping: asyncio.Event) -> int:
        """Claim and process one batch (until ``stopping``); how many messages were claimed."""
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
                if stopping.is_set():
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
                self.counts.published += 1
            else:  # pragma: no cover - only if the lease ran out between publish and mark
                self._lose(1)
        else:
            self.counts.failed += 1
            if span is not None:
                span.set_attribute("error.type", error.split(":", 1)[0])
            if await self.outbox.mark_failed(message, error) is None:
                self._lose(1)  # pragma: no cover - as above

    def _lose(self, count: int) -> None:
        self.counts.lost += count
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
