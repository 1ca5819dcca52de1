"""The store's archive record on MongoDB (:class:`~eventlab._archive.MarkerStore`): a document
beside the position counter (``<events>.archive``), read with the log's read concern and
written with write concern ``majority``, compare-and-set by manifest and state."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from .._archive import ArchiveMarker
from .readers import guarded
from .schema import EventStoreSchema


class MongoArchiveMarkers:
    """The store's :class:`~eventlab._archive.ArchiveMarker`, compare-and-set by manifest and
    state (:class:`~eventlab._archive.MarkerStore`)."""

    def __init__(self, schema: EventStoreSchema) -> None:
        self._schema = schema

    @property
    def _key(self) -> str:
        return f"{self._schema.events_collection_name}.archive"

    async def get(self) -> ArchiveMarker | None:
        await self._schema.ready()
        found = await guarded(
            self._schema, self._schema.counters_majority.find_one({"_id": self._key})
        )
        return ArchiveMarker.of(found)

    async def put(self, marker: ArchiveMarker | None, expected: ArchiveMarker | None) -> bool:
        await self._schema.ready()
        counters = self._schema.counters.with_options(write_concern=WriteConcern("majority"))
        if expected is None:
            assert marker is not None
            document = {"_id": self._key, **marker.document()}
            inserted: bool = await guarded(self._schema, _inserted(counters, document))
            return inserted
        where = {"_id": self._key, "manifest": expected.manifest, "state": expected.state}
        if marker is None:
            deleted = await guarded(self._schema, counters.delete_one(where))
            return bool(deleted.deleted_count)
        updated = await guarded(
            self._schema, counters.update_one(where, {"$set": marker.document()})
        )
        return bool(updated.matched_count)


async def _inserted(counters: Any, document: dict[str, Any]) -> bool:
    """Whether ``document`` was inserted (``False``: one with its id is there already)."""
    try:
        await counters.insert_one(document)
    except DuplicateKeyError:
        return False
    return True
