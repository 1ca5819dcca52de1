"""Stream lifecycle on MongoDB: stream metadata in ``<events collection>_streams`` (one
document per stream that was ever deleted, truncated or given a retention policy, keyed by its
id) and removed events replaced in place by tombstones (docs/lifecycle.md).

A replacement is a ``replaceOne`` filtered on "not a tombstone yet": atomic per event and
idempotent, so a scavenge needs no transaction and a rerun skips what an earlier run removed.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from .._core.lifecycle import StreamMetadata, scavenged
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import UnitOfWork
from .readers import guarded
from .schema import EventStoreSchema
from .session import session_of

_SCAN_FIELDS = {
    "_id": 1,
    "aggregate_id": 1,
    "aggregate_type": 1,
    "event_type": 1,
    "version": 1,
    "position": 1,
    "recorded_at": 1,
}


def metadata_collection_name(events_collection: str) -> str:
    """Where a store's stream metadata lives."""
    return f"{events_collection}_streams"


class MongoLifecycleStorage:
    """The :class:`~eventlab._aggregates.lifecycle_storage.LifecycleStorage` of a
    ``MongoEventStore``."""

    def __init__(self, schema: EventStoreSchema) -> None:
        self._schema = schema

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        name = metadata_collection_name(self._schema.events_collection_name)
        return self._schema.connection.database[name]

    async def metadata(
        self, aggregate_id: str, uow: UnitOfWork | None = None
    ) -> StreamMetadata | None:
        await self._schema.ready()
        found = await guarded(
            self._schema, self.collection.find_one({"_id": aggregate_id}, session=session_of(uow))
        )
        return None if found is None else StreamMetadata.from_document(found)

    async def save(self, metadata: StreamMetadata, uow: UnitOfWork) -> None:
        document = metadata.to_document()
        await guarded(
            self._schema,
            self.collection.replace_one(
                {"_id": document["_id"]}, document, upsert=True, session=session_of(uow)
            ),
        )

    async def policies(self, after: str, limit: int) -> list[StreamMetadata]:
        await self._schema.ready()
        cursor = self.collection.find({"_id": {"$gt": after}}, sort=[("_id", 1)], limit=limit)
        found: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        return [StreamMetadata.from_document(d) for d in found]

    async def documents(
        self, aggregate_id: str, after_version: int, through_version: int
    ) -> list[dict[str, Any]]:
        await self._schema.ready()
        cursor = self._schema.events.find(
            {
                "aggregate_id": aggregate_id,
                "version": {"$gt": after_version, "$lte": through_version},
                TOMBSTONE_FIELD: {"$exists": False},
            },
            _SCAN_FIELDS,
            sort=[("version", 1)],
            batch_size=max(2, min(through_version - after_version, 10_000)),
        )
        found: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        return found

    async def replace(self, documents: list[dict[str, Any]]) -> int:
        if not documents:
            return 0
        requests = [
            ReplaceOne({"_id": d["_id"], TOMBSTONE_FIELD: {"$exists": False}}, scavenged(d))
            for d in documents
        ]
        result = await guarded(
            self._schema, self._schema.events.bulk_write(requests, ordered=False)
        )
        return int(result.modified_count)

    async def aggregate_type(self, aggregate_id: str) -> str | None:
        await self._schema.ready()
        found = await guarded(
            self._schema,
            self._schema.events.find_one(
                {"aggregate_id": aggregate_id},
                {"aggregate_type": 1, "_id": 0},
                sort=[("version", -1)],
            ),
        )
        return None if found is None else found.get("aggregate_type")
