"""Versioned, idempotent index migrations recorded in a ``_migrations`` collection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from .._core.bson_values import check_collection_name
from .._core.errors import ConfigurationError, MigrationError, TransientError, first_line
from .transaction_policy import map_error

MIGRATIONS_COLLECTION = "_migrations"


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index: ``keys`` as (field, direction) pairs, a stable ``name``, options."""

    keys: tuple[tuple[str, int], ...]
    name: str
    unique: bool = False
    partial_filter: Mapping[str, Any] | None = None
    sparse: bool = False

    def model(self) -> IndexModel:
        options: dict[str, Any] = {"name": self.name, "unique": self.unique}
        if self.sparse:
            options["sparse"] = True
        if self.partial_filter is not None:
            options["partialFilterExpression"] = dict(self.partial_filter)
        return IndexModel(list(self.keys), **options)


@dataclass(frozen=True, slots=True)
class Migration:
    """A numbered set of indexes on one collection *role* (resolved to a name at run time)."""

    number: int
    name: str
    role: str
    indexes: tuple[IndexSpec, ...]
    description: str = ""
    drop: tuple[str, ...] = ()
    """Names of indexes an earlier migration created and this one retires (absent: no-op)."""


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """What :meth:`Migrator.run` did: ids applied now and ids found already applied."""

    applied: tuple[str, ...] = ()
    already_applied: tuple[str, ...] = ()
    indexes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Migrator:
    """Applies :class:`Migration` objects in order, once each, recording them.

    A migration's id is ``"<collection>:<number>_<name>"``, so the same migration set can serve
    several stores with different collection names. Creating an index that already exists with
    the same spec is a no-op in MongoDB, so a crash between creating and recording is harmless:
    the next run creates nothing and records the migration.
    """

    def __init__(self, database: AsyncDatabase[Any], collections: Mapping[str, str]) -> None:
        self._db = database
        self._collections = {role: check_collection_name(n) for role, n in collections.items()}

    def migration_id(self, migration: Migration) -> str:
        return f"{self._collection_for(migration)}:{migration.number:04d}_{migration.name}"

    async def applied(self) -> set[str]:
        """Ids of migrations recorded as applied."""
        cursor = self._db[MIGRATIONS_COLLECTION].find({}, {"_id": 1})
        return {doc["_id"] async for doc in cursor}

    async def run(self, migrations: Sequence[Migration]) -> MigrationResult:
        """Apply every migration not yet recorded, in ``number`` order."""
        done = await self.applied()
        applied: list[str] = []
        skipped: list[str] = []
        created: dict[str, tuple[str, ...]] = {}
        for migration in sorted(migrations, key=lambda m: m.number):
            migration_id = self.migration_id(migration)
            if migration_id in done:
                skipped.append(migration_id)
                continue
            collection = self._db[self._collection_for(migration)]
            try:
                for name in migration.drop:
                    await _drop_index(collection, name)
                names = (
                    await collection.create_indexes([i.model() for i in migration.indexes])
                    if migration.indexes
                    else []
                )
            except PyMongoError as exc:
                mapped = map_error(exc)
                if isinstance(mapped, TransientError):  # the deployment had trouble: retry it
                    raise mapped from exc
                raise MigrationError(
                    f"migration {migration_id} failed: {first_line(exc)}",
                    code=getattr(exc, "code", None),
                ) from exc
            await self._db[MIGRATIONS_COLLECTION].update_one(
                {"_id": migration_id},
                {
                    "$setOnInsert": {
                        "applied_at": datetime.now(UTC),
                        "description": migration.description,
                        "indexes": list(names),
                    }
                },
                upsert=True,
            )
            applied.append(migration_id)
            created[migration_id] = tuple(names)
        return MigrationResult(tuple(applied), tuple(skipped), created)

    def _collection_for(self, migration: Migration) -> str:
        try:
            return self._collections[migration.role]
        except KeyError:
            raise ConfigurationError(
                f"migration {migration.name} targets role {migration.role!r}, "
                f"known roles: {sorted(self._collections)}"
            ) from None


_INDEX_NOT_FOUND = 27
_NAMESPACE_NOT_FOUND = 26


async def _drop_index(collection: Any, name: str) -> None:
    try:
        await collection.drop_index(name)
    except OperationFailure as exc:
        # Already gone (a crash after dropping, before recording) or never created: both fine.
        if exc.code not in (_INDEX_NOT_FOUND, _NAMESPACE_NOT_FOUND):
            raise


def asc(*fields: str) -> tuple[tuple[str, int], ...]:
    """Ascending keys for :class:`IndexSpec`."""
    return tuple((f, ASCENDING) for f in fields)


EVENT_STORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event_store_core",
        "events",
        (
            # The final arbiter of optimistic concurrency: two writers can never both store
            # version N of a stream, whatever they read before writing.
            IndexSpec(asc("aggregate_id", "version"), "stream_version", unique=True),
            IndexSpec(asc("position"), "position", unique=True),
        ),
        "unique (aggregate_id, version) and unique global position",
    ),
)
"""The event store's own migrations: what correctness and the store's reads need.

``stream_version`` serves reading a stream and is the arbiter of optimistic concurrency;
``position`` serves reading the log and guarantees no position is stored twice. Nothing else
is created by default: every secondary index costs each append (docs/positions.md, "Indexes").
"""

QUERY_INDEX_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "event_store_queries",
        "events",
        (
            IndexSpec((("aggregate_type", 1), ("occurred_at", 1)), "aggregate_type_occurred_at"),
            IndexSpec(asc("metadata.correlation_id"), "correlation_id"),
            IndexSpec(asc("event_type", "position"), "event_type_position"),
        ),
        "query indexes: by aggregate type and time, by correlation id, by type in order",
    ),
    Migration(
        3,
        "event_store_time",
        "events",
        (
            IndexSpec(asc("recorded_at"), "recorded_at"),
            IndexSpec(asc("occurred_at"), "occurred_at"),
        ),
        "query indexes: time ranges of the log (frames' since / until)",
    ),
)
"""Opt-in query indexes (``MongoEventStore(query_indexes=True)``, ``eventlab migrate
--query-indexes``): for ad-hoc queries by aggregate type and time, by correlation id, by
event type in log order and by time range. Each costs every append (docs/positions.md,
"Indexes")."""

DCB_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        4,
        "dcb_tags",
        "events",
        # Sparse: only events with tags (DCB events) have keys, so stream appends pay nothing.
        (IndexSpec(asc("tags", "position"), "dcb_tags_position", sparse=True),),
        "Dynamic Consistency Boundaries: tags in log order (multikey, one key per tag)",
    ),
)
"""Applied by the first use of :class:`~eventlab.dcb.MongoDCBStore` (and the ``eventsourcing``
module's DCB recorder): the index an append condition and a query by tags read."""
