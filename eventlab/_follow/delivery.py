"""How a subscriber's batch reaches its handler and its checkpoint: in one transaction
(``exactly_once``), or the handler first and the checkpoint after (``at_least_once``); traced,
and its lag measured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from .._core import telemetry as telemetry
from .._core.domain import utc_now
from .._core.race_points import BATCH_HANDLED
from .._core.records import StoredEvent
from ..ports import Backend, CheckpointStore, UnitOfWork
from .batches import Batch

DeliveryMode = Literal["exactly_once", "at_least_once"]
Handler = Callable[..., Awaitable[None]]
BatchHandler = Callable[[tuple[StoredEvent, ...], UnitOfWork | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The batches of the consumer ``name`` (its checkpoint's owner ``owner``) delivered to
    ``handler`` (per event) or ``on_batch`` (per batch) in ``mode``."""

    name: str
    owner: str
    mode: DeliveryMode
    handler: Handler | None
    on_batch: BatchHandler | None
    checkpoints: CheckpointStore
    backend: Backend

    async def apply(self, batch: Batch, expected: int, session: Any, head_seen: int) -> None:
        """Deliver ``batch`` and move the checkpoint from ``expected`` to its end."""
        with telemetry.span(
            f"process {self.name}",
            {
                "messaging.system": "eventlab",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.consumer.group.name": self.name,
                "messaging.batch.message_count": len(batch.events),
                "eventlab.delivery": self.mode,
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
        telemetry.consumer_lag(self.name, behind, seconds)

    async def _commit(self, batch: Batch, expected: int, session: Any) -> None:
        checkpoints = self.checkpoints
        if self.mode == "exactly_once":

            async def work(uow: UnitOfWork) -> None:
                await self._handle(batch, uow)
                if BATCH_HANDLED.armed:
                    await BATCH_HANDLED.reach()
                await checkpoints.save(
                    self.name,
                    batch.position,
                    expected=expected,
                    gaps=batch.gaps,
                    owner=self.owner,
                    uow=uow,
                )

            await self.backend.run(work, session=session)
        else:
            await self._handle(batch, None)
            if BATCH_HANDLED.armed:
                await BATCH_HANDLED.reach()
            await checkpoints.save(self.name, batch.position, gaps=batch.gaps, owner=self.owner)

    async def _handle(self, batch: Batch, uow: UnitOfWork | None) -> None:
        on_batch, handler = self.on_batch, self.handler
        if on_batch is not None:
            await on_batch(batch.events, uow)
            return
        assert handler is not None
        for event in batch.events:
            if uow is not None:
                await handler(event, uow)
            else:
                await handler(event)
