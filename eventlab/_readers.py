"""Readers: a stream in version order, and the log (every stream) in position order.

Both only read; neither knows how events are written. The log reader is what subscriptions,
projections, exports and ``events_frame`` build on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator, Iterable
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure
from pymongo.read_concern import ReadConcern

from ._checks import check_aggregate_id, check_int, check_positive, check_types
from ._event_codec import from_document
from ._records import StoredEvent
from ._schema import EventStoreSchema

if TYPE_CHECKING:
    from ._event_store import MongoEventStore

_STREAM_BATCH = 10_000
_MAX_STRETCH = 1024


class StreamReader:
    """Reads one stream in version order, forwards or backwards."""

    def __init__(self, schema: EventStoreSchema) -> None:
        self._schema = schema

    async def documents(
        self,
        aggregate_id: Any,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        session: AsyncClientSession | None = None,
    ) -> list[dict[str, Any]]:
        """Stored documents with ``after_version < version <= to_version``.

        Forwards: the oldest first. Backwards: the newest first (``max_count`` then takes the
        newest ones: the tail of the stream).
        """
        query: dict[str, Any] = {"aggregate_id": check_aggregate_id(aggregate_id)}
        after_version = check_int(after_version, "after_version")
        # No version condition for a whole stream: the index already orders it, and the
        # condition measurably slows the embedded server's plan.
        if after_version or to_version is not None:
            query["version"] = {"$gt": after_version}
            if to_version is not None:
                query["version"]["$lte"] = check_int(to_version, "to_version")
        limit = 0 if max_count is None else check_positive(max_count, "max_count")
        await self._schema.ready()
        if limit:
            # Versions are dense: a count is a bounded range of versions (O(count) on any
            # server, not a scan of the rest of the stream).
            version = query.setdefault("version", {"$gt": after_version})
            if not backwards:
                version["$lte"] = min(
                    version.get("$lte", after_version + limit), after_version + limit
                )
            else:
                top = version.get("$lte")
                if top is None:
                    top = await self.current_version(query["aggregate_id"], session)
                version["$gt"] = max(after_version, top - limit)
        # The whole stream is wanted: ask for it in one batch instead of the driver's default
        # first batch of 101 documents plus a getMore.
        cursor = self._schema.events.find(
            query,
            sort=[("version", -1 if backwards else 1)],
            limit=limit,
            batch_size=min(limit or _STREAM_BATCH, _STREAM_BATCH),
            session=session,
        )
        docs: list[dict[str, Any]] = await _guarded(self._schema, cursor.to_list(None))
        return docs

    async def current_version(
        self, aggregate_id: Any, session: AsyncClientSession | None = None
    ) -> int:
        """The stream's last version, 0 for a stream with no events."""
        aggregate_id = check_aggregate_id(aggregate_id)
        await self._schema.ready()
        version: int = await _guarded(self._schema, self.version_of(aggregate_id, session))
        return version

    async def version_of(self, aggregate_id: str, session: AsyncClientSession | None) -> int:
        """:meth:`current_version` for a checked id on a ready store (the writer's hot path)."""
        doc = await self._schema.events.find_one(
            {"aggregate_id": aggregate_id},
            {"version": 1, "_id": 0},
            sort=[("version", -1)],
            session=session,
        )
        return int(doc["version"]) if doc else 0


class LogReader:
    """Reads the log, every stream, in global position order, one page at a time.

    Every query is a **bounded range** of positions, ``(lo, hi]``, never an open-ended
    ``position > p`` with a limit: a server that does not stop an index scan at the limit (the
    embedded one) would otherwise examine the whole tail of the log for every page, making a
    full read quadratic in the store's size. A range of ``limit`` positions holds at most
    ``limit`` events, so each query costs O(page) on any server. Where a range comes back short
    (holes left by aborted preallocated appends, an event-type filter, or the end of the log),
    the reader moves on to the next range until the page is full or it passes the head: the
    position counter, which is never below any stored position.
    """

    def __init__(self, schema: EventStoreSchema, *, read_concern: str = "majority") -> None:
        self._schema = schema
        # A follower that checkpoints must never see a write that a failover can roll back:
        # "majority" reads only what a majority holds (docs/scaling.md). "local" is faster on
        # a replica set under load, for readers that do not checkpoint.
        self._read_concern = ReadConcern(read_concern)

    async def page(
        self, after_position: int, limit: int, event_types: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` documents with ``position > after_position``, in position order."""
        await self._schema.ready()
        events = self._schema.events.with_options(read_concern=self._read_concern)
        docs: list[dict[str, Any]] = []
        lo = after_position
        head: int | None = None
        stretch = 1  # doubles while ranges come back empty: a wide hole costs O(log) queries
        while len(docs) < limit:
            wanted = limit - len(docs)
            hi = lo + (limit if event_types is not None else wanted) * stretch
            query: dict[str, Any] = {"position": {"$gt": lo, "$lte": hi}}
            if event_types is not None:
                query["event_type"] = {"$in": event_types}
            cursor = events.find(query, sort=[("position", 1)], batch_size=max(wanted, 2))
            found: list[dict[str, Any]] = await _guarded(self._schema, cursor.to_list(None))
            docs += found[:wanted]
            stretch = 1 if found else min(stretch * 2, _MAX_STRETCH)
            if len(found) < hi - lo:  # a short range: holes, a filter, or the end of the log
                if head is None:
                    head = await self.head()
                if hi >= head:
                    break
            lo = hi
        return docs

    async def head(self) -> int:
        """The highest position handed out so far (the counter; 0 for a new store)."""
        schema = self._schema
        counter = await _guarded(
            schema, schema.counters.find_one({"_id": schema.counter_id}, {"seq": 1})
        )
        return int(counter["seq"]) if counter else 0


class EventStream:
    """The log after a position, as an async iterator fetched page by page.

    Memory stays flat whatever the store's size: one page of ``batch_size`` events at a time,
    each page a fresh indexed query resuming after the last position seen. ``position`` is the
    last position yielded (a checkpoint). With ``max_count`` it stops after that many events.
    """

    def __init__(
        self,
        store: MongoEventStore,
        position: int,
        batch_size: int,
        event_types: Iterable[str] | None,
        max_count: int | None = None,
    ) -> None:
        self._store = store
        self.position = check_int(position, "position")
        self._batch_size = check_positive(batch_size, "batch_size")
        self._event_types = None if event_types is None else check_types(event_types)
        self._remaining = None if max_count is None else check_positive(max_count, "max_count")

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self._iterate()

    def __iter__(self) -> Any:
        raise TypeError(
            "EventStream is asynchronous: use `async for event in ...` (in a notebook cell as "
            "well), or `events = await ....to_list()`"
        )

    def __repr__(self) -> str:
        types = f", types {sorted(self._event_types)}" if self._event_types else ""
        return (
            f"<EventStream after position {self.position:,}{types}, pages of "
            f"{self._batch_size:,}: iterate with `async for`, or `await .to_list()`>"
        )

    def _next_size(self, fetched: int) -> int:
        """The size of the page after ``fetched`` more events (0: the read is complete)."""
        if self._remaining is None:
            return self._batch_size
        return max(0, min(self._batch_size, self._remaining - fetched))

    async def _iterate(self) -> AsyncIterator[StoredEvent]:
        log = await self._store._log()
        types = self._event_types
        size = self._next_size(0)
        pending: asyncio.Future[list[dict[str, Any]]] | None = asyncio.ensure_future(
            log.page(self.position, size, types)
        )
        try:
            while pending is not None:
                page = await pending
                pending = None
                # Read ahead: while this page is decoded and handled, the server is already
                # reading the next one (one page in flight at most: memory stays bounded).
                next_size = self._next_size(len(page))
                if page and len(page) == size and next_size:
                    pending = asyncio.ensure_future(
                        log.page(page[-1]["position"], next_size, types)
                    )
                size = next_size
                for doc in page:
                    event = from_document(doc)
                    self.position = event.position or self.position
                    if self._remaining is not None:
                        self._remaining -= 1
                    yield event
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def to_list(self) -> list[StoredEvent]:
        """All the events of this read as a list (mind the size of the store)."""
        return [event async for event in self]

    def __await__(self) -> Generator[Any, None, EventStream]:
        # Code written against an older shape awaited the call before iterating.
        async def itself() -> EventStream:
            return self

        return itself().__await__()


async def _guarded(schema: EventStoreSchema, operation: Any) -> Any:
    """Await a read; a lost connection becomes :class:`~eventlab.ConnectionFailedError`."""
    try:
        return await operation
    except ConnectionFailure as exc:
        raise schema.connection.unreachable(exc) from exc
