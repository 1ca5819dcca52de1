"""Position allocators: how an append takes its places in the global order.

One object per strategy, so the writer's pipeline has no ``if strategy``. Both take positions
from one counter document with ``$inc``; they differ in *when* (docs/positions.md):

* :class:`TransactionalPositions` increments the counter inside the append's transaction. The
  counter document is then locked until commit, so appenders are serialised on it, positions
  are dense and become visible in commit order: a reader resuming after the last position it
  saw never skips an event.
* :class:`PreallocatedPositions` increments it before the transaction (or with no transaction
  at all on a standalone server). Appenders overlap; an aborted append leaves a hole, and a
  later position can commit before an earlier one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from .._core.errors import InternalSignal
from ..ports import PositionStrategy


class StrategyChanged(InternalSignal):
    """The counter no longer records this allocator's strategy: the store was migrated to the
    other one. Internal: the writer resolves the strategy again and retries."""


class PositionAllocator(ABC):
    """Reserves consecutive positions from the store's counter document."""

    name: PositionStrategy
    positions_survive_aborts: bool
    """True when an aborted append burns its positions (a permanent hole): the writer then
    checks expectations before reserving, so that a writer that already lost burns nothing."""

    def __init__(self, counters: AsyncCollection[dict[str, Any]], counter_id: str) -> None:
        self._counters = counters
        self._counter_id = counter_id

    @abstractmethod
    async def reserve_early(self, count: int) -> int | None:
        """Called once per append, before its transaction: the first position, or ``None``."""

    @abstractmethod
    async def first_position(
        self, count: int, early: int | None, session: AsyncClientSession | None
    ) -> int:
        """Called inside the transaction, as its last step before the insert."""

    async def reserve(self, count: int, session: AsyncClientSession | None) -> int:
        """Reserve ``count`` positions with one ``$inc``; returns the first.

        The ``$inc`` applies only while the counter records this allocator's strategy, so that
        after a migration no append takes a position the old way (readers rely on it).
        """
        counter = await self._counters.find_one_and_update(
            {"_id": self._counter_id, "strategy": self.name},
            {"$inc": {"seq": count}},
            return_document=ReturnDocument.AFTER,
            projection={"seq": 1},
            session=session,
        )
        if counter is None:
            raise StrategyChanged(self.name)
        return int(counter["seq"]) - count + 1


class TransactionalPositions(PositionAllocator):
    """Positions taken inside the append's transaction: dense and in commit order."""

    name: PositionStrategy = "transactional"
    positions_survive_aborts = False

    async def reserve_early(self, count: int) -> int | None:
        return None

    async def first_position(
        self, count: int, early: int | None, session: AsyncClientSession | None
    ) -> int:
        return await self.reserve(count, session)


class PreallocatedPositions(PositionAllocator):
    """Positions taken before the transaction: less contention, holes where appends abort."""

    name: PositionStrategy = "preallocated"
    positions_survive_aborts = True

    async def reserve_early(self, count: int) -> int | None:
        return await self.reserve(count, None)

    async def first_position(
        self, count: int, early: int | None, session: AsyncClientSession | None
    ) -> int:
        assert early is not None  # reserve_early always reserves for this strategy
        return early


ALLOCATORS: dict[PositionStrategy, type[PositionAllocator]] = {
    "transactional": TransactionalPositions,
    "preallocated": PreallocatedPositions,
}
