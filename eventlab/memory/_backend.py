"""The in-memory backend: the :class:`~eventlab.ports.Backend` of the in-memory stores."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, Unpack

from .._core.retry import backoff_delay, may_run_again
from .._core.units_of_work import RunsUnitsOfWork
from .._outbox.policy import OutboxOptions
from ..ports import UnitOfWork
from ._consumers import MemoryCheckpointStore, MemorySnapshotStore
from ._database import MemoryDatabase, MemorySession, MemoryUnitOfWork
from ._outbox import MemoryOutboxStore
from ._read_models import MemoryReadModels

T = TypeVar("T")


class MemoryBackend(RunsUnitsOfWork[UnitOfWork]):
    """One in-memory database and its companions (checkpoints, snapshots, read models, the
    outbox), for tests of command handlers, aggregates and projections that run in
    milliseconds with no server. The data lives as long as the object.

    Not thread-safe: use it from one event loop, as the async API is used.
    """

    def __init__(self) -> None:
        self.database = MemoryDatabase()

    def __repr__(self) -> str:
        return "<MemoryBackend>"

    def checkpoints(self) -> MemoryCheckpointStore:
        return MemoryCheckpointStore(self.database)

    def snapshots(self) -> MemorySnapshotStore:
        return MemorySnapshotStore(self.database)

    def read_models(self, prefix: str = "rm_") -> MemoryReadModels:
        return MemoryReadModels(self.database, prefix)

    def outbox(self, name: str = "outbox", **options: Unpack[OutboxOptions]) -> MemoryOutboxStore:
        """An outbox in this database (the options of :class:`MemoryOutboxStore`)."""
        return MemoryOutboxStore(self.database, name, **options)

    async def _run_in_transaction(
        self, work: Callable[[UnitOfWork], Awaitable[T]], session: Any, time_budget: float
    ) -> T:
        """Run ``work(uow)`` in one transaction and commit it; a retryable error (a write
        conflict with another transaction, a transaction doomed by a failed write or by its
        session ended) reruns it, within the budget. Work that ends the transaction itself
        (aborts it) is not committed: its value is returned as it is."""
        deadline = time.monotonic() + time_budget
        attempt = 0
        while True:
            if attempt:
                await asyncio.sleep(backoff_delay(attempt))
            transaction = self.database.begin(session)
            try:
                result = await work(MemoryUnitOfWork(transaction))
                if transaction.state == "aborted":
                    return result  # the work ended the transaction itself: nothing to commit
                self.database.commit(transaction)
                return result
            except BaseException as exc:
                self.database.abort(transaction)
                if not isinstance(exc, Exception) or not may_run_again(exc, deadline):
                    raise
                attempt += 1

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[MemorySession]:
        yield self.database.new_session()
