"""Reading what a frame or an export selects, as stored documents, at the speed of the wire.

The MongoDB side of :meth:`~eventlab.ports.DocumentLog.selected_documents` (the workbench
knows the port only; the filters and the indexes are this module's):

* **the whole log**: one scan in the collection's own order, the next batch requested while
  the caller decodes the last one (the embedded server runs on the other core); the caller
  orders by position; no index walk, the cheapest way to have the server send everything;
* **the last events, or a filter no index serves**: bounded position ranges, two in flight; a
  server that does not stop an index scan at a limit never scans past a range;
* **a filter an index serves** (streams, event types, aggregate types, a time range, with the
  opt-in query indexes): one query through that index, reading only what it selects.

And the store's incarnation (:meth:`~eventlab.ports.DocumentLog.incarnation`): the events
collection's own UUID, which a drop (and a ``mongorestore --drop``) changes, with a random id
kept beside the position counter, which a restore into a store with no positions renews and
a dropped counters collection loses. Beside it, the store's **rewrite generation**
(:func:`rewritten`): a scavenge marks the store as being rewritten before it replaces an
event, and moves the generation on after its last one (:func:`begin_rewrite`,
:func:`end_rewrite`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .._core.tasks import ended
from ..ports import LogSelection

if TYPE_CHECKING:
    from .schema import EventStoreSchema

RANGE = 10_000
"""Positions per range: a range's documents are one reply (about 3 MB of order events)."""
IN_FLIGHT = 2

Page = Sequence[dict[str, Any]]
"""A page of documents (a whole-log scan's are :class:`StoredBatch` es, decoded on demand)."""


class MongoLog(Protocol):
    """What this module reads through (``log.MongoLog``'s document reads)."""

    @property
    def sharded(self) -> bool: ...

    def scan_documents(self, after: int, through: int) -> AsyncIterator[Page]: ...

    async def find_documents(
        self,
        query: dict[str, Any],
        *,
        descending: bool = False,
        limit: int | None = None,
        as_bson_stores: bool = False,
    ) -> list[dict[str, Any]]: ...

    async def index_names(self) -> set[str]: ...


async def selected_documents(
    log: MongoLog, selection: LogSelection, through: int, on_progress: Callable[[int], None]
) -> AsyncIterator[Page]:
    """The documents ``selection`` selects in ``(selection.after, through]`` (see the module
    doc for the three ways)."""
    # The scan sends the whole collection: only for a read of the whole log (a refresh after
    # a cached head reads its ranges through the position index).
    if selection.whole_log and selection.after == 0 and selection.last is None and not log.sharded:
        async for page in log.scan_documents(selection.after, through):
            on_progress(len(page))
            yield page
        return
    if await _serving_index(log, selection) is not None:
        yield await _indexed(log, selection, through)
        on_progress(through - selection.after)
        return
    async for page in _ranges(log, selection, through, on_progress):
        yield page


def mongo_filter(selection: LogSelection) -> dict[str, Any]:
    """The selection as a MongoDB query (position bounds left to the caller's ranges)."""
    query: dict[str, Any] = {}
    if selection.streams is not None:
        query["aggregate_id"] = {"$in": list(selection.streams)}
    if selection.event_types is not None:
        query["event_type"] = {"$in": list(selection.event_types)}
    if selection.aggregate_types is not None:
        query["aggregate_type"] = {"$in": list(selection.aggregate_types)}
    if selection.timed:
        span: dict[str, datetime] = {}
        if selection.since is not None:
            span["$gte"] = selection.since
        if selection.until is not None:
            span["$lt"] = selection.until
        query[selection.time] = span
    return query


async def _serving_index(log: MongoLog, selection: LogSelection) -> str | None:
    """The index that reads only what ``selection`` selects, if the store has it."""
    if selection.whole_log:
        return None
    if selection.streams:
        return "stream_version"  # a core index: every store has it
    names = await log.index_names()
    for wanted, name in (
        (selection.event_types, "event_type_position"),
        (selection.timed and selection.time == "recorded_at", "recorded_at"),
        (selection.timed and selection.time == "occurred_at", "occurred_at"),
        (selection.aggregate_types, "aggregate_type_occurred_at"),
    ):
        if wanted and name in names:
            return name
    return None


async def _indexed(log: MongoLog, selection: LogSelection, through: int) -> Page:
    """One query; the planner picks the index (the log returns it in position order)."""
    span = {"$gt": selection.after, "$lte": through}
    return await log.find_documents(
        {**mongo_filter(selection), "position": span},
        descending=selection.last is not None,
        limit=selection.last,
        as_bson_stores=True,
    )


async def _ranges(
    log: MongoLog, selection: LogSelection, through: int, on_progress: Callable[[int], None]
) -> AsyncIterator[Page]:
    query = mongo_filter(selection)
    last = selection.last
    ranges = [(lo, min(lo + RANGE, through)) for lo in range(selection.after, through, RANGE)]
    if last is not None:
        ranges.reverse()

    def fetch(lo: int, hi: int) -> Awaitable[Page]:
        return log.find_documents(
            {**query, "position": {"$gt": lo, "$lte": hi}}, as_bson_stores=True
        )

    found = 0
    tail: list[Page] = []
    async for (lo, hi), page in _pipelined(fetch, ranges):
        on_progress(hi - lo)
        if last is None:
            yield page
            continue
        tail.append(page)
        found += len(page)
        if found >= last:
            break
    if last is not None:
        docs = [doc for page in reversed(tail) for doc in page]
        yield docs[-last:]


async def _pipelined(
    fetch: Callable[[int, int], Awaitable[Page]], ranges: list[tuple[int, int]]
) -> AsyncIterator[tuple[tuple[int, int], Page]]:
    """Each range's documents in order, the next ones already requested while the caller
    works on these."""
    pending: list[tuple[tuple[int, int], asyncio.Future[Page]]] = []
    upcoming = iter(ranges)
    try:
        for span in upcoming:
            pending.append((span, asyncio.ensure_future(fetch(*span))))
            if len(pending) < IN_FLIGHT:
                continue
            span, future = pending.pop(0)
            yield span, await future
        while pending:
            span, future = pending.pop(0)
            yield span, await future
    finally:
        for _, future in pending:
            future.cancel()
        for _, future in pending:
            await ended(future)


# -- the incarnation ---------------------------------------------------------------------------


def _incarnation_key(schema: EventStoreSchema) -> str:
    return f"{schema.events_collection_name}.incarnation"


async def incarnation(schema: EventStoreSchema) -> str:
    """``<events collection UUID>:<incarnation id>``; the id is made on first use."""
    await schema.ready()
    database = schema.events.database
    cursor = await database.list_collections(filter={"name": schema.events_collection_name})
    infos = await cursor.to_list(None)
    collection = infos[0].get("info", {}).get("uuid") if infos else None
    collection_id = collection.hex() if isinstance(collection, bytes) else str(collection)
    update = {"$setOnInsert": {"id": uuid.uuid4().hex}}
    try:
        found = await schema.counters.find_one_and_update(
            {"_id": _incarnation_key(schema)},
            update,
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:  # another process made it first: read theirs
        found = await schema.counters.find_one({"_id": _incarnation_key(schema)})
    return f"{collection_id}:{(found or {}).get('id')}"


async def renew_incarnation(schema: EventStoreSchema) -> None:
    """A new incarnation id when the log is being restored from nothing (no position handed
    out: copies of the log made before are of another one). A restore above the counter adds
    positions only, and leaves copies of what is below it good."""
    counter = await schema.counters.find_one({"_id": schema.counter_id}, {"seq": 1})
    if counter and int(counter.get("seq", 0)) > 0:
        return
    await schema.counters.update_one(
        {"_id": _incarnation_key(schema)}, {"$set": {"id": uuid.uuid4().hex}}, upsert=True
    )


async def rewritten(schema: EventStoreSchema) -> str:
    """The store's rewrite generation: a count of the scavenges that replaced events, or,
    while one is under way (or was killed before it finished), a token made anew on every
    call, which no copy of the log can have recorded."""
    await schema.ready()
    found = await schema.counters.find_one(
        {"_id": _incarnation_key(schema)}, {"rewritten": 1, "rewriting": 1}
    )
    if found and found.get("rewriting"):
        return f"rewriting:{uuid.uuid4().hex}"
    return str(int((found or {}).get("rewritten", 0)))


async def begin_rewrite(schema: EventStoreSchema) -> tuple[str, list[str]]:
    """Mark the store as being rewritten (durably, before the first replacement): this run's
    token, and the marks other runs left."""
    await schema.ready()
    token = uuid.uuid4().hex
    before = await schema.counters.find_one_and_update(
        {"_id": _incarnation_key(schema)},
        {
            "$inc": {"rewritten": 1},
            "$push": {"rewriting": token},
            "$setOnInsert": {"id": uuid.uuid4().hex},
        },
        upsert=True,
        return_document=ReturnDocument.BEFORE,
    )
    return token, [str(t) for t in (before or {}).get("rewriting") or []]


async def end_rewrite(schema: EventStoreSchema, marks: tuple[str, list[str]]) -> None:
    """Clear this run's mark, and those left before it started (a run killed half-way: this
    one has done its work again), and move the generation on."""
    token, earlier = marks
    await schema.counters.update_one(
        {"_id": _incarnation_key(schema)},
        {"$inc": {"rewritten": 1}, "$pull": {"rewriting": {"$in": [token, *earlier]}}},
    )


async def rewrite_marks(schema: EventStoreSchema) -> list[str]:
    """The marks of runs under way or killed half-way."""
    await schema.ready()
    found = await schema.counters.find_one({"_id": _incarnation_key(schema)}, {"rewriting": 1})
    return [str(t) for t in (found or {}).get("rewriting") or []]


async def clear_rewrite_marks(schema: EventStoreSchema, marks: list[str]) -> None:
    """Clear ``marks`` and move the generation on."""
    await schema.counters.update_one(
        {"_id": _incarnation_key(schema)},
        {"$inc": {"rewritten": 1}, "$pull": {"rewriting": {"$in": marks}}},
    )
