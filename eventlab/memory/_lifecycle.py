"""Stream lifecycle in memory, laid out as MongoDB's (``eventlab/_mongo/lifecycle.py``): one
metadata document per stream in the table ``<store>:streams``, and a removed event replaced at
its position by a tombstone that keeps its id, stream and version (the unique keys stay taken).
An archived event (nothing live at its position) gets its tombstone written there, in every
table an event sits in, which shadows the archive's copy (docs/archive.md).
"""

from __future__ import annotations

from typing import Any

from .._archive import ArchiveReader
from .._core.lifecycle import StreamMetadata, scavenged
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import UnitOfWork
from ._database import MemoryDatabase
from ._log import RewriteGeneration, StoreTables


class MemoryLifecycleStorage:
    """The :class:`~eventlab._aggregates.lifecycle_storage.LifecycleStorage` of a
    ``MemoryEventStore``."""

    def __init__(
        self,
        database: MemoryDatabase,
        tables: StoreTables,
        name: str,
        archive: ArchiveReader,
        generation: RewriteGeneration,
    ) -> None:
        self._generation = generation
        self._db = database
        self._tables = tables
        self.table = f"{name}:streams"
        self._archive = archive

    async def metadata(
        self, aggregate_id: str, uow: UnitOfWork | None = None
    ) -> StreamMetadata | None:
        found = self._db.get(self.table, aggregate_id, None if uow is None else uow.session)
        return None if found is None else StreamMetadata.from_document(found)

    async def save(self, metadata: StreamMetadata, uow: UnitOfWork) -> None:
        self._db.put(self.table, metadata.aggregate_id, metadata.to_document(), uow.session)

    async def policies(self, after: str, limit: int) -> list[StreamMetadata]:
        documents = self._db.view(self.table)
        ids = sorted(key for key in documents if key > after)[:limit]
        return [StreamMetadata.from_document(dict(documents[key])) for key in ids]

    async def documents(
        self,
        aggregate_id: str,
        after_version: int,
        through_version: int,
        *,
        tombstones: bool = False,
    ) -> list[dict[str, Any]]:
        found = []
        for version in range(after_version + 1, through_version + 1):
            position = self._db.peek(self._tables.versions, (aggregate_id, version))
            document = None if position is None else self._db.peek(self._tables.events, position)
            if document is not None and (tombstones or not document.get(TOMBSTONE_FIELD)):
                found.append({k: v for k, v in document.items() if k != "payload"})
        return found

    async def archived(
        self, aggregate_id: str, after_version: int, through_version: int
    ) -> list[dict[str, Any]]:
        return await self._archive.archived_versions(aggregate_id, after_version, through_version)

    async def begin_rewrite(self) -> Any:
        self._generation.rewriting += 1
        self._generation.count += 1
        return None

    async def end_rewrite(self, token: Any) -> None:
        self._generation.rewriting -= 1
        self._generation.count += 1

    async def rewrite_marks(self) -> list[str]:
        return []  # a run in memory ends with its process, and the store with it

    async def clear_rewrite_marks(self, marks: list[str]) -> None:
        return None

    async def replace(self, documents: list[dict[str, Any]]) -> int:
        replaced = 0
        for document in documents:
            position = document["position"]
            # A plain write, as MongoDB's replaceOne: it waits for a transaction holding it.
            await self._db.until_free(self._tables.events, position)
            there = self._db.peek(self._tables.events, position)
            if there is None:
                replaced += await self._bury(document)
            elif not there.get(TOMBSTONE_FIELD):
                self._db.put(self._tables.events, position, scavenged(there))
                replaced += 1
        return replaced

    async def _bury(self, document: dict[str, Any]) -> int:
        """Write an archived event's tombstone at its position, under its id and version (as
        MongoDB's upsert would: refused, and nothing written, if any of them is taken)."""
        tomb = scavenged(document)
        keys = [
            (self._tables.events, tomb["position"], tomb),
            (self._tables.ids, tomb["_id"], tomb["position"]),
            (self._tables.versions, (tomb["aggregate_id"], tomb["version"]), tomb["position"]),
        ]
        for table, key, _ in keys:
            await self._db.until_free(table, key)
        if any(self._db.peek(table, key) is not None for table, key, _ in keys):
            return 0
        for table, key, value in keys:
            self._db.put(table, key, value)
        return 1

    async def aggregate_type(self, aggregate_id: str) -> str | None:
        version = 1
        last = None
        versions = self._tables.versions
        while (position := self._db.peek(versions, (aggregate_id, version))) is not None:
            last = position
            version += 1
        if last is None:
            return None
        document = self._db.peek(self._tables.events, last)
        return None if document is None else document.get("aggregate_type")
