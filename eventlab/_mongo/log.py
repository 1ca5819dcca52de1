"""The event log on MongoDB, as followers read it (the :class:`~eventlab.ports.EventLog` port).

Three things make following the log safe on any strategy:

* **The head and what is settled** come from the position counter, read with the events'
  read concern. With ``transactional`` positions the counter is taken inside each append's
  transaction, so every position at or below a committed counter is settled.
* **Every query is a bounded range** of positions, ``(after, until]``: a server that does not
  stop an index scan at a limit (the embedded one) would otherwise read the whole tail of the
  log for each page.
* **A hole is given up by writing a tombstone at its position**, a document in the events
  collection that the unique ``position`` index sets against any event at that position. An
  append that still holds the position (an open transaction that inserted there) makes the
  tombstone's transaction fail with a write conflict; one that has committed makes it fail
  with a duplicate key; one that has not inserted yet loses, and its insert fails with a
  duplicate key and stores nothing (docs/positions.md, "Holes"). Exactly one of the two ever
  commits, whatever the clocks say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any, Literal, Self

from pymongo.errors import ConnectionFailure, InvalidOperation, PyMongoError
from pymongo.read_concern import ReadConcern

from .._core import telemetry as telemetry
from .._core.checks import check_int, check_page_size, check_positive
from .._core.domain import utc_now
from .._core.errors import ConfigurationError, EventlabError, SubscriptionError
from .._core.event_codec import from_document
from .._core.tasks import ended, within, woken
from ..ports import Abandonment, LogHead, LogSelection, LogSlice
from . import frames as frames
from . import liveness as liveness
from .schema import EventStoreSchema
from .transaction_policy import TRANSIENT, has_label, is_duplicate_key, map_error
from .transactions import start_transaction

logger = logging.getLogger("eventlab.subscriptions")

TOMBSTONE_FIELD = "gap"
"""Set on a tombstone: the document that stands for a permanently empty position."""

_MAX_BACKOFF = 5.0
_YIELDS_TO_SEND = 4


def tombstone(position: int) -> dict[str, Any]:
    """The document that records ``position`` as a permanent gap.

    Its ``_id`` is a string (events' ids are UUIDs) and its ``version`` the position, so that
    it never collides on the ``(aggregate_id, version)`` index (it has no aggregate id)."""
    return {
        "_id": f"gap:{position}",
        "position": position,
        "version": position,
        TOMBSTONE_FIELD: True,
        "recorded_at": utc_now(),
    }


NOT_A_TOMBSTONE: dict[str, Any] = {TOMBSTONE_FIELD: {"$exists": False}}
"""A filter that leaves tombstones out (for counts and scans)."""


class MongoLog:
    """The :class:`~eventlab.ports.EventLog` of one :class:`~eventlab.MongoEventStore`."""

    def __init__(self, schema: EventStoreSchema, *, read_concern: str = "majority") -> None:
        self._schema = schema
        # A follower that checkpoints must never see a write that a failover can roll back:
        # "majority" reads only what a majority holds (docs/scaling.md).
        self._read_concern = ReadConcern(read_concern)

    @property
    def _events(self) -> Any:
        return self._schema.events.with_options(read_concern=self._read_concern)

    async def head(self) -> LogHead:
        await self._schema.ready()
        counter = await self._guarded(
            self._schema.counters_majority.find_one(
                {"_id": self._schema.counter_id},
                {"seq": 1, "strategy": 1, "unsettled_through": 1},
            )
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

    async def read(
        self,
        after: int,
        until: int,
        *,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        every_position: bool = False,
        limit: int | None = None,
    ) -> LogSlice:
        after, until = check_int(after, "after"), check_int(until, "until")
        if limit is not None:
            limit = check_page_size(limit, "limit")
        name = self._schema.events_collection_name
        with telemetry.span(
            f"read_log {name}",
            {
                **telemetry.db_attributes(self._schema.connection.database_name, name, "read_log"),
                "eventlab.log.after": after,
                "eventlab.log.until": until,
            },
        ) as span:
            found = await self._read(
                after, until, event_types, aggregate_types, every_position, limit
            )
            if span is not None:
                span.set_attribute("eventlab.events.count", len(found.events))
            return found

    async def _read(
        self,
        after: int,
        until: int,
        event_types: Sequence[str] | None,
        aggregate_types: Sequence[str] | None,
        every_position: bool,
        limit: int | None,
    ) -> LogSlice:
        await self._schema.ready()
        if until <= after:
            return LogSlice([], until, frozenset() if every_position else None)
        span = {"$gt": after, "$lte": until}
        filtered = event_types is not None or aggregate_types is not None
        if not filtered:
            docs = await self._find({"position": span}, limit)
            return _slice(docs, _through(docs, until, limit), every_position)
        if not every_position:
            docs = await self._find(_filter(span, event_types, aggregate_types), limit)
            return _slice(docs, _through(docs, until, limit), False)
        # Positions (and what decides the filters) of the whole range, payloads only of what
        # passes: contiguity needs every position, the consumer only the events it wants.
        slots = await self._find(
            {"position": span},
            limit,
            projection={"position": 1, "event_type": 1, "aggregate_type": 1, TOMBSTONE_FIELD: 1},
        )
        types = None if event_types is None else set(event_types)
        kinds = None if aggregate_types is None else set(aggregate_types)
        wanted = [
            d["position"]
            for d in slots
            if not d.get(TOMBSTONE_FIELD)
            and (types is None or d.get("event_type") in types)
            and (kinds is None or d.get("aggregate_type") in kinds)
        ]
        docs = await self._find({"position": {"$in": wanted}}, len(wanted)) if wanted else []
        return LogSlice(
            [from_document(d) for d in docs],
            _through(slots, until, limit),
            frozenset(d["position"] for d in slots),
            tuple(d["position"] for d in slots if d.get(TOMBSTONE_FIELD)),
        )

    async def _find(
        self, query: dict[str, Any], limit: int | None, projection: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        cursor = self._events.find(
            query,
            projection,
            sort=[("position", 1)],
            limit=limit or 0,
            batch_size=max(2, min(limit or 10_000, 10_000)),
        )
        docs: list[dict[str, Any]] = await self._guarded(cursor.to_list(None))
        return docs

    async def find_documents(
        self,
        query: dict[str, Any],
        *,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """The event documents matching ``query`` in position order (tombstones left out),
        decoded by the driver and nothing more: for readers that build their own records
        (frames). ``query`` must bound the positions or select by an indexed field. No index
        is hinted: the embedded server scans a hinted index whole, and its planner, like
        MongoDB's, picks the index that selects."""
        await self._schema.ready()
        # Sorted here unless a limit needs the server's order: asked to sort by position, a
        # server may walk the position index instead of the one that selects (the embedded
        # one does, reading the whole log for one stream).
        options: dict[str, Any] = {}
        if limit:
            options.update(sort=[("position", -1 if descending else 1)], limit=limit)
        cursor = self._events.find(
            {**query, TOMBSTONE_FIELD: {"$exists": False}}, batch_size=100_000, **options
        )
        docs: list[dict[str, Any]] = await self._guarded(cursor.to_list(None))
        docs.sort(key=_position_of)
        return docs

    async def scan_documents(
        self, after: int, through: int, *, batch: int = 2_000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every event document with ``after < position <= through``, in the collection's own order
        (not by position), batch by batch, the next batch already requested while the caller
        works on this one: the cheapest way to have the server send the whole log (no index
        walk), for readers that order what they read themselves (frames). Not on a sharded
        cluster, where a cursor's next batch may be asked of another router."""
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
            codec = self._events.codec_options  # command replies default to the driver's
            reply = await self._guarded(
                database.command(find, session=session, codec_options=codec)
            )
            cursor = reply["cursor"]
            documents, cursor_id = cursor["firstBatch"], cursor["id"]
            more: asyncio.Future[Any] | None = None
            try:
                while True:
                    if cursor_id:
                        get_more = {"getMore": cursor_id, "collection": name, "batchSize": batch}
                        more = asyncio.ensure_future(
                            self._guarded(
                                database.command(get_more, session=session, codec_options=codec)
                            )
                        )
                        # Let the request go out before the caller works on this batch (its
                        # work does not yield the loop): that is what overlaps the two.
                        for _ in range(_YIELDS_TO_SEND):
                            await asyncio.sleep(0)
                    yield [
                        d
                        for d in documents
                        if after < d.get("position", 0) <= through and TOMBSTONE_FIELD not in d
                    ]
                    if more is None:
                        return
                    cursor = (await more)["cursor"]
                    more = None
                    documents, cursor_id = cursor["nextBatch"], cursor["id"]
            finally:
                if more is not None:  # the reader stopped early: end the server's cursor too
                    more.cancel()
                    await ended(more)
                    with contextlib.suppress(PyMongoError):
                        await database.command(
                            {"killCursors": name, "cursors": [cursor_id]}, session=session
                        )

    @property
    def sharded(self) -> bool:
        """Whether the store is on a sharded cluster (readers look at every position)."""
        return self._schema.connection.info.kind == "sharded"

    async def index_names(self) -> set[str]:
        """The names of the events collection's indexes."""
        await self._schema.ready()
        info = await self._guarded(self._schema.events.index_information())
        return set(info)

    def selected_documents(
        self, selection: LogSelection, through: int, on_progress: Callable[[int], None]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """:meth:`~eventlab.ports.DocumentLog.selected_documents` (in ``frames.py``)."""
        return frames.selected_documents(self, selection, through, on_progress)

    async def incarnation(self) -> str:
        """:meth:`~eventlab.ports.DocumentLog.incarnation` (in ``frames.py``)."""
        found: str = await self._guarded(frames.incarnation(self._schema))
        return found

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        positions = [check_positive(p, "a position") for p in positions]
        if not positions:
            return Abandonment()
        await self._schema.ready()
        try:
            if await self._tombstones(list(positions)):
                return Abandonment(abandoned=tuple(positions))
            abandoned: list[int] = []
            filled: list[int] = []
            in_flight: list[int] = []
            for position in positions:  # one at a time: each is decided on its own
                outcome = await self._tombstone_one(position)
                {"abandoned": abandoned, "filled": filled, "in_flight": in_flight}[outcome].append(
                    position
                )
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if in_flight:
            # Held past gap_timeout by an open transaction: if its process is dead (its lease
            # expired), have it ended now rather than when the server expires it.
            liveness.blocked(self._schema.connection.client)
        return Abandonment(tuple(abandoned), tuple(filled), tuple(in_flight))

    async def _tombstones(self, positions: list[int]) -> bool:
        """All of them in one transaction; ``False`` when any one is taken or held."""
        documents = [tombstone(p) for p in positions]
        if not self._schema.connection.supports_transactions:
            return False
        async with self._schema.connection.client.start_session() as session:
            # A transaction, not a plain insert: a plain insert that meets an open
            # transaction's insert at the same position waits for it to end; in a
            # transaction the server answers at once with a write conflict.
            await start_transaction(session)
            try:
                await self._schema.events.insert_many(documents, ordered=True, session=session)
                await session.commit_transaction()
            except PyMongoError as exc:
                if session.in_transaction:
                    await session.abort_transaction()
                if has_label(exc, TRANSIENT) or is_duplicate_key(exc):
                    return False
                raise
        return True

    async def _tombstone_one(self, position: int) -> Literal["abandoned", "filled", "in_flight"]:
        events = self._schema.events
        try:
            if self._schema.connection.supports_transactions:
                async with self._schema.connection.client.start_session() as session:
                    await start_transaction(session)
                    try:
                        await events.insert_one(tombstone(position), session=session)
                        await session.commit_transaction()
                    finally:
                        if session.in_transaction:
                            await session.abort_transaction()
            else:  # a standalone server: appends do not hold positions in transactions
                await events.insert_one(tombstone(position))
        except PyMongoError as exc:
            if has_label(exc, TRANSIENT):
                return "in_flight"
            if not is_duplicate_key(exc):
                raise
            there = await events.find_one({"position": position}, {TOMBSTONE_FIELD: 1})
            return "abandoned" if there is not None and there.get(TOMBSTONE_FIELD) else "filled"
        return "abandoned"

    def wakeups(self, *, mode: Literal["auto", "push", "poll"] = "auto") -> ChangeStreamWakeups:
        return ChangeStreamWakeups(self._schema, mode)

    async def _guarded(self, operation: Any) -> Any:
        try:
            return await operation
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc


def _filter(
    span: dict[str, int],
    event_types: Sequence[str] | None,
    aggregate_types: Sequence[str] | None,
) -> dict[str, Any]:
    # The type fields first: a server that matches compound indexes by the filter's field
    # order (the embedded one) then uses event_type_position, where it exists.
    query: dict[str, Any] = {}
    if event_types is not None:
        query["event_type"] = {"$in": list(event_types)}
    if aggregate_types is not None:
        query["aggregate_type"] = {"$in": list(aggregate_types)}
    query["position"] = span
    return query


def _slice(docs: list[dict[str, Any]], through: int, every_position: bool) -> LogSlice:
    events = [from_document(d) for d in docs if not d.get(TOMBSTONE_FIELD)]
    return LogSlice(
        events,
        through,
        frozenset(d["position"] for d in docs) if every_position else None,
        tuple(d["position"] for d in docs if d.get(TOMBSTONE_FIELD)),
    )


def _position_of(doc: dict[str, Any]) -> int:
    return int(doc["position"])


def _through(docs: list[dict[str, Any]], until: int, limit: int | None) -> int:
    """Where a read's slice ends: at the last document when the limit cut it short."""
    if limit and len(docs) >= limit:
        return int(docs[-1]["position"])
    return until


class ChangeStreamWakeups:
    """Woken by every insert into the events collection, through a change stream that is
    reopened after errors; where there is none (a standalone server) it only times out.

    It only wakes: every event is still read from the log, so order and contiguity come from
    positions, never from the stream.
    """

    def __init__(self, schema: EventStoreSchema, mode: Literal["auto", "push", "poll"]) -> None:
        self._schema = schema
        self._mode = mode
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.watching = False

    async def __aenter__(self) -> Self:
        if self._mode == "poll":
            return self
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[bool] = loop.create_future()
        self._task = loop.create_task(self._watch(opened))
        try:
            self.watching = await within(asyncio.shield(opened), 10)
        except TimeoutError:
            self.watching = False
        if not self.watching and self._mode == "push":
            await self.__aexit__(None, None, None)
            raise SubscriptionError(
                "this deployment has no change streams (a standalone server?); "
                "use wake='poll' or 'auto'"
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed = True
        self._woken.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await ended(task)
        self.watching = False

    async def wait(self, timeout: float) -> None:
        await woken(self._woken, timeout)
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()

    async def _watch(self, opened: asyncio.Future[bool]) -> None:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"_id": 1}},
        ]
        while not self._closed:
            try:
                await self._schema.ready()
                events = self._schema.events
                async with await events.watch(pipeline, max_await_time_ms=1000) as stream:
                    if not opened.done():
                        opened.set_result(True)
                    self.watching = True
                    self._woken.set()  # anything committed while (re)opening is read now
                    # try_next() answers None at once, without any I/O, once the stream
                    # is dead: looping on it without checking would never yield the loop.
                    while not self._closed and stream.alive:
                        if await stream.try_next() is not None:
                            self._woken.set()
                if not self._closed:  # the stream ended: reopen it, without spinning
                    await asyncio.sleep(_MAX_BACKOFF / 10)
            except asyncio.CancelledError:
                raise
            except InvalidOperation:
                # The client was closed under a follower that was never closed itself (an
                # abandoned ``async for``): nothing can wake it any more; end, do not retry.
                self.watching = False
                if not opened.done():
                    opened.set_result(False)
                return
            except (PyMongoError, EventlabError) as exc:
                self.watching = False
                if not opened.done():  # no change streams here: the reader polls
                    opened.set_result(False)
                    return
                logger.info("change stream closed (%s); reopening", exc)
                await asyncio.sleep(_MAX_BACKOFF / 10)
