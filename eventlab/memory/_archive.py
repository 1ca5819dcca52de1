"""The in-memory side of the archive (:mod:`eventlab._archive`): the store's archive record
and incarnation in a table of their own, and the live documents the jobs select, remove and
put back, in every table an event sits in (position, id, stream and version), as plain
writes that wait for a transaction holding a key, as MongoDB's do. The archive's files are
written by the same code as MongoDB's: to a directory, or to fsspec's ``memory://``."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .._archive import ArchiveReader
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import LogHead
from ._database import MemoryDatabase
from ._log import MemoryLog

_INCARNATION = "incarnation"


class MemoryArchiveHost:
    """:class:`~eventlab._archive.ArchiveHost` for a :class:`~eventlab.memory.MemoryEventStore`."""

    def __init__(self, database: MemoryDatabase, log: MemoryLog, name: str) -> None:
        self._db = database
        self._log = log
        self._name = name

    @property
    def archive_reader(self) -> ArchiveReader:
        return self._log.archive_reader

    def archive_store_name(self) -> str:
        return f"memory:{self._name}"

    async def incarnation(self) -> str:
        table = f"{self._name}:archive"
        found = self._db.peek(table, _INCARNATION)
        if found is None:
            found = uuid.uuid4().hex
            self._db.put(table, _INCARNATION, found)
        return f"memory:{found}"

    async def head(self) -> LogHead:
        return await self._log.head()

    def _live(self, low: int, high: int) -> list[dict[str, Any]]:
        events = self._log.tables.events
        documents = self._db.view(events)
        return [
            copy.deepcopy(documents[p])
            for p in self._db.keys_between(events, low, high)
            if not documents[p].get(TOMBSTONE_FIELD)
        ]

    async def live_documents(self, through: int) -> list[dict[str, Any]]:
        return self._live(0, through)

    async def streams_continuing(self, lasts: dict[str, int], through: int) -> set[str]:
        versions = self._log.tables.versions
        return {s for s, v in lasts.items() if self._db.peek(versions, (s, v + 1)) is not None}

    async def first_recorded_at_or_after(self, moment: datetime) -> int | None:
        head = (await self.head()).position
        for doc in self._live(0, head):
            if doc["recorded_at"] >= moment:
                return int(doc["position"])
        return None

    def _keys(self, document: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        tables = self._log.tables
        position = document["position"]
        return [
            (tables.events, position, document),
            (tables.ids, document["_id"], position),
            (tables.versions, (document["aggregate_id"], document["version"]), position),
        ]

    async def remove(self, documents: Sequence[dict[str, Any]]) -> int:
        removed = 0
        for document in documents:
            there = self._db.peek(self._log.tables.events, document["position"])
            if there is None or there.get("_id") != document["_id"] or there.get(TOMBSTONE_FIELD):
                continue  # gone, or a scavenge's tombstone: it shadows the archive's copy
            for table, key, _ in self._keys(document):
                await self._db.until_free(table, key)
                self._db.delete(table, key)
            removed += 1
        return removed

    async def live_positions(self, ids: Sequence[Any]) -> dict[Any, int]:
        found = {i: self._db.peek(self._log.tables.ids, i) for i in ids}
        return {i: int(position) for i, position in found.items() if position is not None}

    async def put_back(self, documents: Sequence[dict[str, Any]]) -> int:
        restored = 0
        for document in documents:
            tables = self._log.tables
            if self._db.peek(tables.events, document["position"]) is not None:
                continue  # live already
            if self._db.peek(tables.ids, document["_id"]) is not None:
                continue  # its id is live elsewhere: a unique index, as on MongoDB
            for table, key, value in self._keys(document):
                await self._db.until_free(table, key)
                self._db.put(table, key, value)
            restored += 1
        if restored:
            self._log.notify()
        return restored
