"""Dynamic Consistency Boundaries in memory: the storage the shared decision logic runs over
(``eventlab/_dcb/decisions.py``), on a :class:`MemoryEventStore`'s documents and counter, with
MongoDB's snapshot isolation. The same interleavings give the same outcomes as on MongoDB."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .._core.bson_values import MAX_DOCUMENT_BYTES
from .._core.errors import ConfigurationError
from .._core.event_codec import encoded_bodies
from .._core.tombstones import TOMBSTONE_FIELD
from .._dcb.records import ItemParts, item_matches
from .._dcb.store import DecisionStore, wrong_strategy
from ..ports import UnitOfWork
from ._database import DuplicateKey, MemoryTransaction
from ._log import StrategyChanged
from ._store import MemoryEventStore

T = TypeVar("T")


def _matches(item: ItemParts | None, document: dict[str, Any]) -> bool:
    if document.get(TOMBSTONE_FIELD):
        return False
    return item is None or item_matches(item, document["event_type"], document.get("tags") or ())


class MemoryDCBStorage:
    """The DCB storage of one in-memory store (the decision logic's ``DCBStorage``)."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store
        self._db = store.backend.database
        self._log = store.log
        self._tables = store.log.tables

    async def prepare(self) -> None:
        if self._log.counter.strategy != "transactional":
            raise wrong_strategy(self._log.counter.strategy)

    def check(self, bodies: Sequence[dict[str, Any]]) -> None:
        # What MongoDB refuses: over its size limit once stored, an int over 64 bits.
        encoded_bodies(bodies, MAX_DOCUMENT_BYTES, [None] * len(bodies))

    async def head(self) -> int:
        return self._log.counter.head().position

    async def matching(
        self, item: ItemParts | None, after: int, through: int, limit: int | None
    ) -> list[dict[str, Any]]:
        documents = self._db.view(self._tables.events)
        found = []
        for position in self._db.keys_between(self._tables.events, after, through):
            if _matches(item, documents[position]):
                found.append(copy.deepcopy(documents[position]))
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def transaction(self, attempt: Callable[[Any], Awaitable[T]]) -> T:
        async def work(uow: UnitOfWork) -> T:
            return await attempt(uow.session)

        budget = self._store.transaction_time_budget
        result: T = await self._store.backend.run(work, time_budget=budget)
        return result

    def failure(self, bodies: Sequence[dict[str, Any]], error: Exception) -> Exception:
        if isinstance(error, StrategyChanged):  # migrated under the append
            return wrong_strategy("preallocated")
        return error

    async def take_positions(self, count: int, transaction: MemoryTransaction) -> int:
        return self._log.counter.reserve(count, "transactional", transaction)

    async def first_match(
        self,
        reads: Sequence[ItemParts | None],
        after: int,
        first: int,
        transaction: MemoryTransaction,
    ) -> dict[str, Any] | None:
        # Positions from ``first`` on are this transaction's: nothing else can be there.
        documents = self._db.view(self._tables.events, transaction)
        positions = (
            range(after + 1, first)
            if first - after <= len(documents)
            else sorted(p for p in documents if after < p < first)
        )
        for position in positions:
            document = documents.get(position)
            if document is not None and any(_matches(item, document) for item in reads):
                clash: dict[str, Any] = copy.deepcopy(document)
                return clash
        return None

    async def insert(self, documents: list[dict[str, Any]], transaction: MemoryTransaction) -> bool:
        tables = self._tables
        try:
            for document in documents:  # MongoDB's order: _id, (aggregate_id, version), position
                position = document["position"]
                self._db.insert(tables.ids, document["_id"], position, transaction)
                key = (document["aggregate_id"], document["version"])
                self._db.insert(tables.versions, key, position, transaction)
                self._db.insert(tables.events, position, document, transaction)
        except DuplicateKey:
            return False
        transaction.after_commit.append(self._log.notify)
        return True

    async def abort(self, transaction: MemoryTransaction) -> None:
        self._db.abort(transaction)

    async def stored(self, event_ids: Sequence[Any]) -> list[dict[str, Any]]:
        found = []
        for event_id in event_ids:
            position = self._db.peek(self._tables.ids, event_id)
            if position is not None:
                found.append(self._db.get(self._tables.events, position))
        return found


class MemoryDCBStore(DecisionStore):
    """Dynamic Consistency Boundaries over a :class:`MemoryEventStore` (the
    :class:`~eventlab.ports.DCBStore` port), with ``MongoDCBStore``'s guarantees: for fast
    tests of DCB decisions.

    Needs the ``transactional`` position strategy (:class:`~eventlab.ConfigurationError`
    otherwise, as on MongoDB).
    """

    def __init__(self, store: MemoryEventStore) -> None:
        if not isinstance(store, MemoryEventStore):
            raise ConfigurationError(f"store must be a MemoryEventStore, got {store!r:.80}")
        self.store = store
        super().__init__(MemoryDCBStorage(store))
