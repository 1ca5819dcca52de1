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
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from .._core.bson_values import check_collection_name
from .._core.errors import (
    ConfigurationError,
    InvalidEventError,
    MigrationError,
    TransactionsUnsupportedError,
)
from .._core.store_options import STRATEGIES, PositionStrategy, check_positions
from .connection import MongoConnectionManager
from .migrations import (
    EVENT_STORE_MIGRATIONS,
    QUERY_INDEX_MIGRATIONS,
    MigrationResult,
    Migrator,
)
from .transaction_policy import map_error

logger = logging.getLogger("eventlab")

_REPLICA_SET_HELP = (
    "transactions need a replica set or a sharded cluster. For development start a single-node "
    "replica set (mongod --replSet rs0, then rs.initiate()) or use the embedded server "
    "(EmbeddedMongo, which advertises one); or pass require_replica_set=False to run without "
    "transactions (appends are then not atomic and positions may have gaps)"
)


@dataclass(frozen=True, slots=True)
class StoreMode:
    """What the store resolved on first use: the strategy is the one recorded with the
    counter (the data's, not the constructor's), transactions the deployment's."""

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
        if positions is not None:
            check_positions(positions)
        self.connection = connection
        self.events_collection_name = check_collection_name(events_collection)
        self.counters_collection_name = check_collection_name(counters_collection)
        if self.events_collection_name == self.counters_collection_name:
            raise ConfigurationError("events and counters collections must differ")
        self.counter_id = f"{self.events_collection_name}.position"
        self.requested_positions = positions
        self._require_replica_set = require_replica_set
        self.auto_migrate = auto_migrate
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

    @property
    def counters_majority(self) -> AsyncCollection[dict[str, Any]]:
        """The counters, read with the events' read concern (``majority``): a head read this
        way never shows a position whose events a failover could roll back."""
        return self.counters.with_options(read_concern=ReadConcern("majority"))

    async def ready(self) -> StoreMode:
        """Resolve the mode, apply migrations and seed the counter, once.

        Every entry point's first use runs this: a driver error here is mapped like any other
        (``_transaction_policy.map_error``), never handed on raw.
        """
        if self._mode is not None:
            return self._mode
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._mode is None:
                self._mode = await self._mapped_bootstrap()
            return self._mode

    async def reload(self) -> StoreMode:
        """Resolve the mode again (the recorded strategy changed under a running writer)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # The store's strategy changed by an explicit migration: the data's wins over
            # what this process was constructed with.
            self.requested_positions = None
            self._mode = await self._mapped_bootstrap()
            return self._mode

    async def _mapped_bootstrap(self) -> StoreMode:
        try:
            return await self._bootstrap()
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc

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
        try:
            if self.connection.info.kind == "sharded" and not self.auto_migrate:
                await self.refuse_sharded_events()
            if self.auto_migrate:
                await self.migrate()
            recorded = await self.seed_counter(
                positions or ("transactional" if transactions else "preallocated")
            )
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc
        if positions is not None and positions != recorded:
            raise ConfigurationError(
                f"positions={positions!r} was asked for, but {self.events_collection_name} was "
                f"created with {recorded!r} positions (recorded with its counter): leave "
                "positions out to use the store's, or change the store's strategy with "
                "`await store.change_position_strategy(...)` (docs/positions.md)"
            )
        if recorded == "transactional" and not transactions:
            raise ConfigurationError(
                f"{self.events_collection_name} takes its positions in transactions "
                "('transactional'), which this standalone server does not have"
            )
        return StoreMode(recorded, transactions)

    async def refuse_sharded_events(self) -> None:
        """On a sharded cluster: refuse an events collection that is sharded.

        The store's two arbiters are unique indexes, ``(aggregate_id, version)`` for optimistic
        concurrency and ``position`` for the global order and for abandoned holes; a sharded
        collection can only enforce a unique index prefixed by its shard key, so at most one
        of them. The events stay in one unsharded collection (docs/scaling.md).
        """
        namespace = f"{self.connection.database_name}.{self.events_collection_name}"
        try:
            sharded = await self.connection.client["config"]["collections"].find_one(
                {"_id": namespace, "dropped": {"$ne": True}}, {"key": 1}
            )
        except OperationFailure as exc:  # no right to read config: index creation decides
            logger.warning("could not check whether %s is sharded: %s", namespace, exc)
            return
        if sharded is not None and sharded.get("key"):
            raise MigrationError(
                f"{namespace} is sharded on {dict(sharded['key'])}: eventlab keeps a store's "
                "events in one unsharded collection, because its arbiters are two unique "
                "indexes, (aggregate_id, version) and position, and a sharded collection can "
                "only enforce a unique index prefixed by its shard key. Unshard it "
                "(unshardCollection, MongoDB 8.0) or use a database whose events collection is "
                "not sharded; read models, checkpoints and the outbox may be sharded "
                "(docs/scaling.md)"
            )

    async def migrate(self, *, query_indexes: bool | None = None) -> MigrationResult:
        """Apply the index migrations (idempotent; recorded in ``_migrations``).

        :param query_indexes: also the opt-in query index set (default: the store's setting).
        """
        if query_indexes is None:
            query_indexes = self.query_indexes
        if not self.connection.is_connected:
            await self.connection.connect()
        if self.connection.info.kind == "sharded":
            await self.refuse_sharded_events()
        migrations = EVENT_STORE_MIGRATIONS + (QUERY_INDEX_MIGRATIONS if query_indexes else ())
        migrator = Migrator(self.connection.database, {"events": self.events_collection_name})
        try:
            return await migrator.run(migrations)
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc

    async def highest_position(self) -> int:
        """The highest stored position (0 for an empty store)."""
        last = await self.events.find_one({}, {"position": 1}, sort=[("position", -1)])
        position = last.get("position") if last else None
        if position is None:
            return 0
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            # Positions sort numbers below strings and objects: any such one is the highest.
            raise InvalidEventError(
                f"{self.events.name} holds a document (_id {(last or {}).get('_id')!r:.60}) "
                f"whose position is {position!r:.40}, not a position: not an eventlab events "
                "collection, or one written by something else"
            )
        return position

    async def seed_counter(self, strategy: PositionStrategy) -> PositionStrategy:
        """Move the counter up to the highest stored position (never down), record
        ``strategy`` with it if none is recorded yet, and return the recorded one.

        The counter must never be behind the events (after an import or a dropped counters
        collection), or new positions would collide with stored ones. The strategy lives with
        the counter so that every process, reader and writer uses the store's own
        (docs/positions.md, "The strategy is part of the store").
        """
        highest = await self.highest_position()
        update = {"$max": {"seq": highest}, "$setOnInsert": {"strategy": strategy}}
        try:
            await self.counters.update_one({"_id": self.counter_id}, update, upsert=True)
        except DuplicateKeyError:  # a concurrent first use created it; $max again
            await self.counters.update_one({"_id": self.counter_id}, {"$max": {"seq": highest}})
        # A counter written by a writer that recorded no strategy (an older layout, or the
        # eventsourcing module before its first store): it gets this one.
        await self.counters.update_one(
            {"_id": self.counter_id, "strategy": {"$exists": False}},
            {"$set": {"strategy": strategy}},
        )
        counter = await self.counters_majority.find_one({"_id": self.counter_id})
        recorded = (counter or {}).get("strategy", strategy)
        if recorded not in STRATEGIES:
            raise ConfigurationError(
                f"the counter of {self.events_collection_name} records an unknown position "
                f"strategy {recorded!r}"
            )
        result: PositionStrategy = recorded
        return result

    async def change_strategy(self, new: PositionStrategy) -> bool:
        """Record ``new`` as the store's strategy; whether it changed (docs/positions.md).

        Writers check the recorded strategy in the same ``$inc`` that takes their positions,
        so none takes a position under the old strategy once this has applied. Moving to
        ``transactional`` remembers the counter as ``unsettled_through``: positions at or
        below it were taken by ``preallocated`` appends and may still hold holes in flight, so
        readers keep looking at each of them.
        """
        check_positions(new)
        await self.ready()
        old = "preallocated" if new == "transactional" else "transactional"
        if new == "transactional" and not self.connection.supports_transactions:
            raise ConfigurationError("'transactional' positions need transactions")
        if new == "preallocated":
            update: Any = {"$set": {"strategy": new}}
        else:
            update = [
                {
                    "$set": {
                        "strategy": new,
                        "unsettled_through": {
                            "$max": [{"$ifNull": ["$unsettled_through", 0]}, "$seq"]
                        },
                    }
                }
            ]
        result = await self.counters.update_one({"_id": self.counter_id, "strategy": old}, update)
        await self.reload()
        return bool(result.modified_count)
