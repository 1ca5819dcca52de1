"""Stream lifecycle on MongoDB: stream metadata in ``<events collection>_streams`` (one
document per stream that was ever deleted, truncated or given a retention policy, keyed by its
id) and removed events replaced in place by tombstones (docs/lifecycle.md).

A replacement is a ``replaceOne`` filtered on "not a tombstone yet", with ``upsert``: atomic
per event and idempotent, so a scavenge needs no transaction and a rerun skips what an earlier
run removed (the upsert then meets the tombstone's ``_id``: a duplicate key, nothing written).
The upsert is what removes an archived event: nothing is live at its position, so its
tombstone is inserted there, and shadows the archive's copy (docs/archive.md).
"""

from __future__ import annotations

from typing import Any

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from .._archive import ArchiveReader
from .._core.lifecycle import StreamMetadata, scavenged
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import UnitOfWork
from . import frames
from .readers import guarded
from .schema import EventStoreSchema
from .session import session_of
from .transaction_policy import DUPLICATE_KEY

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

    def __init__(self, schema: EventStoreSchema, archive: ArchiveReader) -> None:
        self._schema = schema
        self._archive = archive

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
        self,
        aggregate_id: str,
        after_version: int,
        through_version: int,
        *,
        tombstones: bool = False,
    ) -> list[dict[str, Any]]:
        await self._schema.ready()
        query: dict[str, Any] = {
            "aggregate_id": aggregate_id,
            "version": {"$gt": after_version, "$lte": through_version},
        }
        if not tombstones:
            query[TOMBSTONE_FIELD] = {"$exists": False}
        cursor = self._schema.events.find(
            query,
            {**_SCAN_FIELDS, TOMBSTONE_FIELD: 1},
            sort=[("version", 1)],
            batch_size=max(2, min(through_version - after_version, 10_000)),
        )
        found: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        return found

    async def archived(
        self, aggregate_id: str, after_version: int, through_version: int
    ) -> list[dict[str, Any]]:
        return await self._archive.archived_versions(aggregate_id, after_version, through_version)

    async def replace(self, documents: list[dict[str, Any]]) -> int:
        if not documents:
            return 0
        requests = [
            ReplaceOne(
                {"_id": d["_id"], TOMBSTONE_FIELD: {"$exists": False}}, scavenged(d), upsert=True
            )
            for d in documents
        ]
        replaced: int = await guarded(self._schema, self._replaced(requests))
        return replaced

    async def _replaced(self, requests: list[ReplaceOne[dict[str, Any]]]) -> int:
        try:
            result = await self._schema.events.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            # A duplicate key: a tombstone is there already (another scavenge's); the others
            # were written.
            details = exc.details
            if any(e.get("code") != DUPLICATE_KEY for e in details.get("writeErrors") or []):
                raise
            return int(details.get("nModified", 0)) + int(details.get("nUpserted", 0))
        return int(result.modified_count) + int(result.upserted_count)

    async def begin_rewrite(self) -> Any:
        return await guarded(self._schema, frames.begin_rewrite(self._schema))

    async def end_rewrite(self, token: Any) -> None:
        await guarded(self._schema, frames.end_rewrite(self._schema, token))

    async def rewrite_marks(self) -> list[str]:
        found: list[str] = await guarded(self._schema, frames.rewrite_marks(self._schema))
        return found

    async def clear_rewrite_marks(self, marks: list[str]) -> None:
        await guarded(self._schema, frames.clear_rewrite_marks(self._schema, marks))

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
