"""The MongoDB side of the archive jobs (:class:`~eventlab._archive.ArchiveHost`): the live
documents they select, remove and put back.

No transaction: every step is one idempotent write, made in an order that keeps every event
readable (the module doc of ``_archive._job``); each write waits for a majority, so a step a
failover rolls back is simply done again by the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError
from pymongo.write_concern import WriteConcern

from .._archive import ArchiveReader
from .._core.tombstones import TOMBSTONE_FIELD
from ..ports import LogHead
from .log import MongoLog
from .readers import guarded
from .schema import EventStoreSchema
from .transaction_policy import DUPLICATE_KEY

_RANGE = 10_000
"""Positions per query: every query is a bounded range (the embedded server scans on)."""
_CONCURRENT = 50
_RUN = 32
"""Consecutive positions removed by one range query rather than listed (measured on the
embedded server: a statement costs about 5 ms, a document about 0.7 ms, and an $in list about
6 µs per value per document, so short runs go better in lists of about a hundred)."""
_LISTED = 100
_SCAN_PER_STREAM = 20
"""Reading the positions above the bound costs about 50 µs a document, a point read about
1.8 ms: scan when there are fewer than this many documents above it per stream asked about."""


class MongoArchiveHost:
    """:class:`~eventlab._archive.ArchiveHost` for a :class:`~eventlab.MongoEventStore`."""

    def __init__(self, schema: EventStoreSchema, log: MongoLog) -> None:
        self._schema = schema
        self._log = log

    @property
    def archive_reader(self) -> ArchiveReader:
        return self._log.archive_reader

    def archive_store_name(self) -> str:
        return f"{self._schema.connection.database_name}.{self._schema.events_collection_name}"

    async def incarnation(self) -> str:
        return await self._log.incarnation()

    async def head(self) -> LogHead:
        return await self._log.head()

    async def live_documents(self, through: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for low in range(0, through, _RANGE):
            span = {"$gt": low, "$lte": min(low + _RANGE, through)}
            found.extend(await self._log.find_documents({"position": span}))
        return found

    async def streams_continuing(self, lasts: dict[str, int], through: int) -> set[str]:
        head = (await self.head()).position
        if head - through <= _SCAN_PER_STREAM * len(lasts):
            return await self._streams_above(set(lasts), through, head)
        # A stream goes on if its next version exists (versions are dense): one point read
        # each on the stream_version index, a batch at a time (a distinct over an $in of ids
        # costs the embedded server far more).
        found: set[str] = set()
        items = sorted(lasts.items())
        for start in range(0, len(items), _CONCURRENT):
            batch = items[start : start + _CONCURRENT]
            nexts = await asyncio.gather(*(self._has_version(s, v + 1) for s, v in batch))
            found.update(s for (s, _), there in zip(batch, nexts, strict=True) if there)
        return found

    async def _streams_above(self, streams: set[str], through: int, head: int) -> set[str]:
        found: set[str] = set()
        for low in range(through, head, _RANGE):
            query = {"position": {"$gt": low, "$lte": min(low + _RANGE, head)}}
            cursor = self._schema.events.find(query, {"aggregate_id": 1, "_id": 0})
            docs = await guarded(self._schema, cursor.to_list(None))
            found.update(d["aggregate_id"] for d in docs if d.get("aggregate_id") in streams)
        return found

    async def _has_version(self, stream: str, version: int) -> bool:
        query = {"aggregate_id": stream, "version": version}
        found = await guarded(self._schema, self._schema.events.find_one(query, {"_id": 1}))
        return found is not None

    async def first_recorded_at_or_after(self, moment: datetime) -> int | None:
        head = (await self.head()).position
        for low in range(0, head, _RANGE):
            query = {
                "position": {"$gt": low, "$lte": min(low + _RANGE, head)},
                "recorded_at": {"$gte": moment},
                TOMBSTONE_FIELD: {"$exists": False},
            }
            first = await guarded(
                self._schema,
                self._schema.events.find_one(query, {"position": 1}, sort=[("position", 1)]),
            )
            if first is not None:
                return int(first["position"])
        return None

    @property
    def _events(self) -> Any:
        return self._schema.events.with_options(write_concern=WriteConcern("majority"))

    async def remove(self, documents: Sequence[dict[str, Any]]) -> int:
        # By position (unique, never reused): each run of consecutive positions as one range
        # (an $in of many values costs the embedded server per value per document), the
        # scattered rest in small $in lists.
        # Never a tombstone: one a scavenge wrote there since the job selected the event
        # shadows the archive's copy, and must stay.
        removed = 0
        for query in _position_queries(sorted(int(d["position"]) for d in documents)):
            query[TOMBSTONE_FIELD] = {"$exists": False}
            deleted = await guarded(self._schema, self._events.delete_many(query))
            removed += int(deleted.deleted_count)
        return removed

    async def live_positions(self, ids: Sequence[Any]) -> dict[Any, int]:
        cursor = self._schema.events.find({"_id": {"$in": list(ids)}}, {"position": 1})
        found = await guarded(self._schema, cursor.to_list(None))
        return {d["_id"]: int(d["position"]) for d in found}

    async def put_back(self, documents: Sequence[dict[str, Any]]) -> int:
        inserted: int = await guarded(self._schema, self._insert(list(documents)))
        return inserted

    async def _insert(self, documents: list[dict[str, Any]]) -> int:
        try:
            result = await self._events.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))  # the others are live already
        return len(result.inserted_ids)


def _position_queries(positions: list[int]) -> Iterator[dict[str, Any]]:
    """Delete filters that select exactly ``positions`` (sorted, distinct)."""
    scattered: list[int] = []
    start = 0
    while start < len(positions):
        end = start
        while end + 1 < len(positions) and positions[end + 1] == positions[end] + 1:
            end += 1
        if end - start + 1 >= _RUN:
            yield {"position": {"$gte": positions[start], "$lte": positions[end]}}
        else:
            scattered.extend(positions[start : end + 1])
        start = end + 1
    for first in range(0, len(scattered), _LISTED):
        yield {"position": {"$in": scattered[first : first + _LISTED]}}
