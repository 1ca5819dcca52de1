"""The seam for writers beside a ``MongoEventStore``'s own (Dynamic Consistency Boundaries):
what they need of the store, and nothing of how it is built.

``store.write_access()`` hands out the store's events collection and its position counter (the
``transactional`` allocator), readiness with the writer's own index migrations of the events
collection, the log's head, and transactions run by the store's policy and time budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, PyMongoError

from .log import MongoLog
from .migrations import Migration, Migrator
from .positions import TransactionalPositions
from .schema import EventStoreSchema, StoreMode
from .transaction_policy import map_error
from .transactions import run_transaction

T = TypeVar("T")


class WriteAccess:
    """What a writer beside the store's own may use: see the module's docstring."""

    def __init__(self, schema: EventStoreSchema, log: MongoLog, time_budget: float) -> None:
        self._schema = schema
        self._log = log
        self._time_budget = time_budget
        self._migrated: set[str] = set()

    @property
    def events(self) -> AsyncCollection[dict[str, Any]]:
        return self._schema.events

    @property
    def max_document_size(self) -> int:
        """The deployment's largest document, in bytes."""
        return self._schema.connection.info.max_bson_object_size

    def transactional_positions(self) -> TransactionalPositions:
        """The counter's allocator for positions taken inside a transaction."""
        return TransactionalPositions(self._schema.counters, self._schema.counter_id)

    async def ready(self, migrations: Sequence[Migration] = ()) -> StoreMode:
        """The store ready (its mode), with ``migrations`` of its events collection applied
        when the store migrates itself; driver errors as eventlab's."""
        try:
            mode = await self._schema.ready()
            wanted = [m for m in migrations if m.name not in self._migrated]
            if wanted and self._schema.auto_migrate:
                names = {"events": self._schema.events_collection_name}
                await Migrator(self._schema.connection.database, names).run(wanted)
            self._migrated.update(m.name for m in wanted)
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        return mode

    async def head(self) -> int:
        """The log's head (the counter, read with the events' read concern)."""
        return (await self._log.head()).position

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work(session)`` in one transaction by the store's policy and time budget."""
        return await run_transaction(
            self._schema.connection.client, work, time_budget=self._time_budget
        )
