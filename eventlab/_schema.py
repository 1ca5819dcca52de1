"""The event store's schema and bootstrap: collections, indexes, the counter, readiness.

Everything that has to be true of the database before the first append or read: the
deployment has transactions (or the caller opted out), the index migrations are applied (the
unique indexes are what makes concurrent appends safe), and the position counter is not behind
the stored events. It runs once per store, on first use, under a lock.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError

from ._bson import check_collection_name
from ._connection import MongoConnectionManager
from ._errors import ConfigurationError, TransactionsUnsupportedError
from ._migrations import (
    EVENT_STORE_MIGRATIONS,
    QUERY_INDEX_MIGRATIONS,
    MigrationResult,
    Migrator,
)
from ._positions import PositionStrategy

logger = logging.getLogger("eventlab")

_REPLICA_SET_HELP = (
    "transactions need a replica set or a sharded cluster. For development start a single-node "
    "replica set (mongod --replSet rs0, then rs.initiate()) or use the embedded server "
    "(EmbeddedMongo, which advertises one); or pass require_replica_set=False to run without "
    "transactions (appends are then not atomic and positions may have gaps)"
)


@dataclass(frozen=True, slots=True)
class StoreMode:
    """What the store resolved on first use."""

    positions: PositionStrategy
    transactions: bool


class EventStoreSchema:
    """Collections, indexes and the position counter of one event store."""

    def __init__(
        self,
        connection: MongoConnectionManager,
        *,
        events_collection: str,
        counters_collection: str,
        positions: PositionStrategy | None,
        require_replica_set: bool,
        auto_migrate: bool,
        query_indexes: bool = False,
    ) -> None:
        if positions not in (None, "transactional", "preallocated"):
            raise ConfigurationError(
                f"positions must be 'transactional' or 'preallocated', got {positions!r}"
            )
        self.connection = connection
        self.events_collection_name = check_collection_name(events_collection)
        self.counters_collection_name = check_collection_name(counters_collection)
        if self.events_collection_name == self.counters_collection_name:
            raise ConfigurationError("events and counters collections must differ")
        self.counter_id = f"{self.events_collection_name}.position"
        self.requested_positions = positions
        self._require_replica_set = require_replica_set
        self._auto_migrate = auto_migrate
        self.query_indexes = query_indexes
        self._mode: StoreMode | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def events(self) -> AsyncCollection[dict[str, Any]]:
        return self.connection.database[self.events_collection_name]

    @property
    def counters(self) -> AsyncCollection[dict[str, Any]]:
        return self.connection.database[self.counters_collection_name]

    @property
    def mode(self) -> StoreMode | None:
        """The resolved mode, or ``None`` before first use."""
        return self._mode

    async def ready(self) -> StoreMode:
        """Resolve the mode, apply migrations and seed the counter, once."""
        if self._mode is not None:
            return self._mode
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._mode is None:
                self._mode = await self._bootstrap()
            return self._mode

    async def _bootstrap(self) -> StoreMode:
        if not self.connection.is_connected:
            await self.connection.connect()
        positions = self.requested_positions
        transactions = self.connection.supports_transactions
        if not transactions:
            if self._require_replica_set:
                raise TransactionsUnsupportedError(
                    f"{self.connection.display_uri} is a standalone server: {_REPLICA_SET_HELP}"
                )
            if positions == "transactional":
                raise ConfigurationError(
                    "positions='transactional' needs transactions, which this standalone "
                    "server does not have; use positions='preallocated'"
                )
            message = (
                f"eventlab: {self.connection.display_uri} has no transactions "
                "(require_replica_set=False). Batches are NOT atomic (a failed append can "
                "leave part of a batch stored) and global positions can have gaps and land "
                "out of commit order. Use a replica set for anything but experiments."
            )
            warnings.warn(message, RuntimeWarning, stacklevel=5)
            logger.warning(message)
            positions = "preallocated"
        try:
            if self._auto_migrate:
                await self.migrate()
            await self.seed_counter()
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        return StoreMode(positions or "transactional", transactions)

    async def migrate(self, *, query_indexes: bool | None = None) -> MigrationResult:
        """Apply the index migrations (idempotent; recorded in ``_migrations``).

        :param query_indexes: also the opt-in query index set (default: the store's setting).
        """
        if query_indexes is None:
            query_indexes = self.query_indexes
        migrations = EVENT_STORE_MIGRATIONS + (QUERY_INDEX_MIGRATIONS if query_indexes else ())
        migrator = Migrator(self.connection.database, {"events": self.events_collection_name})
        try:
            return await migrator.run(migrations)
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc

    async def highest_position(self) -> int:
        """The highest stored position (0 for an empty store)."""
        last = await self.events.find_one({}, {"position": 1}, sort=[("position", -1)])
        return int(last["position"]) if last and last.get("position") is not None else 0

    async def seed_counter(self) -> None:
        """Move the counter up to the highest stored position (never down).

        The counter must never be behind the events (after an import or a dropped counters
        collection), or new positions would collide with stored ones.
        """
        highest = await self.highest_position()
        try:
            await self.counters.update_one(
                {"_id": self.counter_id}, {"$max": {"seq": highest}}, upsert=True
            )
        except DuplicateKeyError:  # a concurrent first use created it; $max again
            await self.counters.update_one({"_id": self.counter_id}, {"$max": {"seq": highest}})
