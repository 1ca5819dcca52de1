"""The event log on MongoDB, as followers read it (the :class:`~eventlab.ports.EventLog` port).

Three things make following the log safe on any strategy, each in a part of its own:

* **The head and what is settled** come from the position counter, read with the events'
  read concern (:meth:`MongoLog.head`). With ``transactional`` positions the counter is taken
  inside each append's transaction, so every position at or below a committed counter is
  settled.
* **Every query is a bounded range** of positions, ``(after, until]``
  (:class:`~eventlab._mongo.log_ranges.LogRangeReader`).
* **A hole is given up by writing a tombstone at its position**, which the unique ``position``
  index sets against any event there: exactly one of the two ever commits, whatever the clocks
  say (:class:`~eventlab._mongo.tombstones.MongoTombstones`).

Followers are woken by a change stream (:class:`~eventlab._mongo.wakeups.ChangeStreamWakeups`);
it only wakes them, the log alone says what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

from bson.codec_options import CodecOptions
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern

from .._archive import ArchiveReader
from .._core.bson_columns import Batch, cursor_batch
from .._core.bson_values import AS_BSON_STORES
from .._core.errors import ConfigurationError
from .._core.log_query import LogQuery
from .._core.stored_batch import StoredBatch
from .._core.tasks import ended
from .._core.tombstones import TOMBSTONE_FIELD
from .._follow.log_reads import ReadsLogRanges
from ..ports import Abandonment, LogHead, LogSelection, LogSlice
from . import frames as frames
from .archive import MongoArchiveMarkers
from .log_ranges import LogRangeReader
from .readers import guarded
from .schema import EventStoreSchema
from .tombstones import MongoTombstones
from .wakeups import ChangeStreamWakeups

_YIELDS_TO_SEND = 4
_UNDECODED: CodecOptions[RawBSONDocument] = CodecOptions(document_class=RawBSONDocument)
_TOMBSTONE_RANGE = 10_000
"""Positions per query for tombstones (every query a bounded range: the embedded server does
not stop an index scan at a limit)."""


class MongoLog(ReadsLogRanges):
    """The :class:`~eventlab.ports.EventLog` of one :class:`~eventlab.MongoEventStore`: its
    head here, ranges read by a :class:`~eventlab._mongo.log_ranges.LogRangeReader`, holes
    given up by :class:`~eventlab._mongo.tombstones.MongoTombstones`, followers woken by
    :class:`~eventlab._mongo.wakeups.ChangeStreamWakeups`; and the documents of the log for
    readers that build their own records (frames)."""

    def __init__(self, schema: EventStoreSchema, *, read_concern: str = "majority") -> None:
        self._schema = schema
        # A follower that checkpoints must never see a write that a failover can roll back:
        # "majority" reads only what a majority holds (docs/scaling.md).
        self._read_concern = ReadConcern(read_concern)
        self._ranges = LogRangeReader(schema, self._read_concern)
        self._tombstones = MongoTombstones(schema)
        self.archive_reader = ArchiveReader(MongoArchiveMarkers(schema), self.tombstone_positions)
        """Reads through the store's archive (docs/archive.md)."""

    @property
    def _events(self) -> Any:
        return self._schema.events.with_options(read_concern=self._read_concern)

    async def head(self) -> LogHead:
        await self._schema.ready()
        counter = await guarded(
            self._schema,
            self._schema.counters_majority.find_one(
                {"_id": self._schema.counter_id},
                {"seq": 1, "strategy": 1, "unsettled_through": 1},
            ),
        )
        counter = counter or {}
        position = int(counter.get("seq", 0))
        strategy = counter.get("strategy", "transactional")
        if strategy == "transactional" and self._schema.connection.info.kind != "sharded":
            settled_after = min(position, int(counter.get("unsettled_through", 0)))
        else:
            # Preallocated: nothing above the reader's own contiguous prefix is settled. On a
            # sharded cluster readers look at every position too (docs/scaling.md).
            settled_after = position
        return LogHead(position, strategy, settled_after)

    async def _read_range(self, query: LogQuery) -> LogSlice:
        return await self.archive_reader.log_range(query, self._ranges.read)

    async def tombstone_positions(self, after: int, through: int) -> frozenset[int]:
        """The positions ``after < p <= through`` that hold a tombstone, by bounded ranges."""
        await self._schema.ready()
        found: set[int] = set()
        for low in range(after, through, _TOMBSTONE_RANGE):
            span = {"$gt": low, "$lte": min(low + _TOMBSTONE_RANGE, through)}
            cursor = self._events.find(
                {"position": span, TOMBSTONE_FIELD: True}, {"position": 1, "_id": 0}
            )
            docs = await guarded(self._schema, cursor.to_list(None))
            found.update(int(d["position"]) for d in docs)
        return frozenset(found)

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        return await self._tombstones.abandon(positions)

    def wakeups(self, *, mode: Literal["auto", "push", "poll"] = "auto") -> ChangeStreamWakeups:
        return ChangeStreamWakeups(self._schema, mode)

    # -- the documents, for readers that build their own records -------------------------------

    async def find_documents(
        self,
        query: dict[str, Any],
        *,
        descending: bool = False,
        limit: int | None = None,
        as_bson_stores: bool = False,
    ) -> list[dict[str, Any]]:
        """The event documents matching ``query`` in position order (tombstones left out),
        decoded by the driver and nothing more, for readers that build their own records
        (frames, the archive); ``as_bson_stores``: decoded as BSON stores them (naive UTC
        times, ``Binary`` UUIDs: ``AS_BSON_STORES``), for a reader that converts in bulk.
        ``query`` must bound the positions or select by an indexed field. No index is hinted:
        the embedded server scans a hinted index whole, and its planner, like MongoDB's, picks
        the index that selects."""
        await self._schema.ready()
        # Sorted here unless a limit needs the server's order: asked to sort by position, a
        # server may walk the position index instead of the one that selects (the embedded
        # one does, reading the whole log for one stream).
        options: dict[str, Any] = {}
        if limit:
            options.update(sort=[("position", -1 if descending else 1)], limit=limit)
        events = self._events
        if as_bson_stores:
            events = events.with_options(codec_options=AS_BSON_STORES)
        cursor = events.find(
            {**query, TOMBSTONE_FIELD: {"$exists": False}}, batch_size=100_000, **options
        )
        docs: list[dict[str, Any]] = await guarded(self._schema, cursor.to_list(None))
        docs.sort(key=_position_of)
        return docs

    async def scan_documents(
        self, after: int, through: int, *, batch: int = 2_000
    ) -> AsyncIterator[StoredBatch]:
        """Every event document with ``after < position <= through``, in the collection's own
        order (not by position), batch by batch, the next batch already requested while the
        caller works on this one: the cheapest way to have the server send the whole log (no
        index walk), for readers that order what they read themselves (frames). Each batch
        comes undecoded (:class:`~eventlab._core.stored_batch.StoredBatch`): a frame reads its
        columns from the bytes in bulk, any other reader iterates it as decoded documents
        (``AS_BSON_STORES``). Not on a sharded cluster, where a cursor's next batch may be
        asked of another router."""
        await self._schema.ready()
        if self.sharded:
            raise ConfigurationError("a scan of the whole log is not offered on a sharded cluster")
        database = self._schema.events.database
        name = self._schema.events.name
        find = {
            "find": name,
            # No filter at all: evaluating one costs this server more per document than
            # sending it; the range and the tombstones are taken out here.
            "filter": {},
            "hint": {"$natural": 1},
            "batchSize": batch,
            "readConcern": self._read_concern.document,
        }
        async with self._schema.connection.client.start_session(
            causal_consistency=False
        ) as session:
            codec = _UNDECODED  # the documents stay bytes until their reader decides
            reply = await guarded(
                self._schema, database.command(find, session=session, codec_options=codec)
            )
            documents, cursor_id = _cursor_batch(reply)
            more: asyncio.Future[Any] | None = None
            try:
                while True:
                    if cursor_id:
                        get_more = {
                            "getMore": Int64(cursor_id),
                            "collection": name,
                            "batchSize": batch,
                        }
                        more = asyncio.ensure_future(
                            guarded(
                                self._schema,
                                database.command(get_more, session=session, codec_options=codec),
                            )
                        )
                        # Let the request go out before the caller works on this batch (its
                        # work does not yield the loop): that is what overlaps the two.
                        for _ in range(_YIELDS_TO_SEND):
                            await asyncio.sleep(0)
                    yield StoredBatch(documents, after, through)
                    if more is None:
                        return
                    documents, cursor_id = _cursor_batch(await more)
                    more = None
            finally:
                if more is not None:  # the reader stopped early: end the server's cursor too
                    more.cancel()
                    await ended(more)
                    with contextlib.suppress(PyMongoError):
                        await database.command(
                            {"killCursors": name, "cursors": [Int64(cursor_id)]}, session=session
                        )

    @property
    def sharded(self) -> bool:
        """Whether the store is on a sharded cluster (readers look at every position)."""
        return self._schema.connection.info.kind == "sharded"

    async def index_names(self) -> set[str]:
        """The names of the events collection's indexes."""
        await self._schema.ready()
        info = await guarded(self._schema, self._schema.events.index_information())
        return set(info)

    def selected_documents(
        self, selection: LogSelection, through: int, on_progress: Callable[[int], None]
    ) -> AsyncIterator[Sequence[dict[str, Any]]]:
        """:meth:`~eventlab.ports.DocumentLog.selected_documents` (in ``frames.py``)."""
        return self.archive_reader.selected(
            selection,
            through,
            lambda: frames.selected_documents(self, selection, through, on_progress),
        )

    async def incarnation(self) -> str:
        """:meth:`~eventlab.ports.DocumentLog.incarnation` (in ``frames.py``)."""
        found: str = await guarded(self._schema, frames.incarnation(self._schema))
        return found

    async def rewritten(self) -> str:
        """The store's rewrite generation (``frames.rewritten``): it changes when a scavenge
        replaces events, and is new on every call while one is under way."""
        found: str = await guarded(self._schema, frames.rewritten(self._schema))
        return found


def _position_of(doc: dict[str, Any]) -> int:
    return int(doc["position"])


def _cursor_batch(reply: RawBSONDocument) -> tuple[Batch, int]:
    """A find or getMore reply's documents, undecoded, and its cursor's id."""
    cursor = bytes(reply["cursor"].raw)  # its own bytes: the batch is read undecoded
    starts, cursor_id = cursor_batch(cursor)
    return Batch(cursor, starts), cursor_id
