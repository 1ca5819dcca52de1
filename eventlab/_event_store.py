"""The MongoDB event store.

Write path, in one transaction per call (see docs/positions.md for the reasoning):

1. guard the expected version: version ``expected`` must exist (a read; events are never deleted,
   so once seen it stays true); the unique index on (aggregate_id, version) rejects anything
   already at ``expected + 1``. Together they make "the stream is exactly at ``expected``" atomic
   without a read-then-insert race.
2. take positions: ``transactional`` increments the counter by the batch size *inside* the
   transaction, so the counter document serialises appenders and positions become visible
   contiguously and in commit order; ``preallocated`` increments it before the transaction.
3. ``insert_many`` the batch; a duplicate key is classified by the index it hit.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
)

from ._bson import check_collection_name
from ._connection import MongoConnectionManager
from ._domain import DomainEvent, utc_now
from ._errors import (
    ConcurrencyError,
    ConfigurationError,
    DocumentTooLargeError,
    DuplicateEventError,
    EventlabError,
    InvalidEventError,
    TransactionsUnsupportedError,
    UnitOfWorkStateError,
)
from ._event_codec import event_body, from_document, same_client_content, stored_document
from ._migrations import EVENT_STORE_MIGRATIONS, MigrationResult, Migrator
from ._records import ExpectedVersion, StoredEvent
from ._registry import EventRegistry, UnknownPolicy
from ._transactions import DEFAULT_TIME_BUDGET, run_transaction

logger = logging.getLogger("eventlab")

PositionStrategy = Literal["transactional", "preallocated"]
_STREAM_BATCH = 10_000
Expected = int | ExpectedVersion

_REPLICA_SET_HELP = (
    "transactions need a replica set or a sharded cluster. For development start a single-node "
    "replica set (mongod --replSet rs0, then rs.initiate()) or use the embedded server "
    "(EmbeddedMongo, which advertises one); or pass require_replica_set=False to run without "
    "transactions (appends are then not atomic and positions may have gaps)"
)


class SessionProvider(Protocol):
    """Anything carrying a session in an active transaction (a unit of work)."""

    @property
    def session(self) -> AsyncClientSession: ...


@dataclass(slots=True)
class _StreamWrite:
    aggregate_id: str
    expected: Expected
    events: list[StoredEvent]
    bodies: list[dict[str, Any]]


class _KeyCollision(Exception):
    """A duplicate key inside the write; resolved after the transaction is aborted."""

    def __init__(self, index: str, aggregate_id: str | None) -> None:
        super().__init__(index)
        self.index = index
        self.aggregate_id = aggregate_id


class MongoEventStore:
    """An append-only event store on MongoDB with optimistic concurrency and a global order.

    :param connection: a :class:`~eventlab.MongoConnectionManager` (connected before first use).
    :param registry: the :class:`~eventlab.EventRegistry` for typed events (``save_events`` of
        :class:`DomainEvent` objects and :meth:`load_events`).
    :param events_collection: collection of events (validated name).
    :param counters_collection: collection holding the global position counter.
    :param positions: ``"transactional"`` (default where transactions exist: contiguous,
        commit-ordered positions) or ``"preallocated"`` (faster under contention; gaps where an
        append aborts, and commits may land out of position order). See ``docs/positions.md``.
    :param require_replica_set: refuse to run without transactions (default). ``False`` runs on a
        standalone server with a loud warning: batches are then not atomic and positions can gap.
    :param auto_migrate: apply the index migrations on first use (the unique indexes are what
        makes concurrency safe, so turning this off is only for managed deployments that run
        :meth:`migrate` themselves).
    :param transaction_time_budget: seconds to keep retrying transient transaction failures.
    """

    def __init__(
        self,
        connection: MongoConnectionManager,
        *,
        registry: EventRegistry | None = None,
        events_collection: str = "domain_events",
        counters_collection: str = "counters",
        positions: PositionStrategy | None = None,
        require_replica_set: bool = True,
        auto_migrate: bool = True,
        transaction_time_budget: float = DEFAULT_TIME_BUDGET,
    ) -> None:
        if positions not in (None, "transactional", "preallocated"):
            raise ConfigurationError(
                f"positions must be 'transactional' or 'preallocated', got {positions!r}"
            )
        self.connection = connection
        self.registry = registry if registry is not None else EventRegistry()
        self.events_collection_name = check_collection_name(events_collection)
        self.counters_collection_name = check_collection_name(counters_collection)
        if self.events_collection_name == self.counters_collection_name:
            raise ConfigurationError("events and counters collections must differ")
        self._requested_positions = positions
        self._require_replica_set = require_replica_set
        self._auto_migrate = auto_migrate
        self._time_budget = transaction_time_budget
        self._counter_id = f"{self.events_collection_name}.position"
        self._strategy: PositionStrategy | None = None
        self._transactions = True
        self._ready_lock: asyncio.Lock | None = None

    # -- configuration ---------------------------------------------------------------------

    @property
    def position_strategy(self) -> PositionStrategy:
        """The strategy in force (resolved on first use when not given explicitly)."""
        if self._strategy is not None:
            return self._strategy
        return self._requested_positions or "transactional"

    @property
    def transactional(self) -> bool:
        """Whether appends run in transactions (False only with ``require_replica_set=False``
        on a standalone server)."""
        return self._transactions

    @property
    def events(self) -> AsyncCollection[dict[str, Any]]:
        return self.connection.database[self.events_collection_name]

    @property
    def counters(self) -> AsyncCollection[dict[str, Any]]:
        return self.connection.database[self.counters_collection_name]

    def describe(self) -> dict[str, Any]:
        """A summary for logs and notebooks."""
        return {
            "database": self.connection.database_name,
            "events_collection": self.events_collection_name,
            "counters_collection": self.counters_collection_name,
            "positions": self.position_strategy,
            "transactions": self._transactions,
        }

    async def migrate(self) -> MigrationResult:
        """Apply the event store's index migrations (idempotent; recorded in ``_migrations``)."""
        migrator = Migrator(self.connection.database, {"events": self.events_collection_name})
        try:
            return await migrator.run(EVENT_STORE_MIGRATIONS)
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc

    async def _ready(self) -> None:
        if self._strategy is not None:
            return
        if self._ready_lock is None:
            self._ready_lock = asyncio.Lock()
        async with self._ready_lock:
            if self._strategy is not None:
                return
            if not self.connection.is_connected:
                await self.connection.connect()
            strategy = self._requested_positions
            if not self.connection.supports_transactions:
                if self._require_replica_set:
                    raise TransactionsUnsupportedError(
                        f"{self.connection.display_uri} is a standalone server: {_REPLICA_SET_HELP}"
                    )
                if strategy == "transactional":
                    raise ConfigurationError(
                        "positions='transactional' needs transactions, which this standalone "
                        "server does not have; use positions='preallocated'"
                    )
                message = (
                    f"eventlab: {self.connection.display_uri} has no transactions "
                    "(require_replica_set=False). Batches are NOT atomic (a failed append can "
                    "leave part of a batch stored) and global positions can have gaps and land "
                    "out of commit order. Use a replica set for anything but experiments."
                )
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                logger.warning(message)
                self._transactions = False
                strategy = "preallocated"
            if self._auto_migrate:
                await self.migrate()
            await self._seed_counter()
            self._strategy = strategy or "transactional"

    async def _seed_counter(self) -> None:
        # The counter must never be behind the events (after an import or a dropped counters
        # collection), or new positions would collide with stored ones.
        last = await self.events.find_one({}, {"position": 1}, sort=[("position", -1)])
        highest = int(last["position"]) if last and last.get("position") is not None else 0
        try:
            await self.counters.update_one(
                {"_id": self._counter_id}, {"$max": {"seq": highest}}, upsert=True
            )
        except DuplicateKeyError:  # a concurrent first use created it; $max again
            await self.counters.update_one({"_id": self._counter_id}, {"$max": {"seq": highest}})

    # -- writes ----------------------------------------------------------------------------

    async def append(self, event: StoredEvent, uow: SessionProvider | None = None) -> StoredEvent:
        """Store one event at its own ``version`` (which must follow the stream's last)."""
        return (await self.append_batch([event], uow=uow))[0]

    async def append_batch(
        self, events: Sequence[StoredEvent], uow: SessionProvider | None = None
    ) -> list[StoredEvent]:
        """Store events atomically (all or none), each at its own ``version``.

        Events may span streams; within a stream, versions must be contiguous and the first must
        directly follow the stream's current version, else :class:`ConcurrencyError`.
        """
        if not events:
            return []
        groups: dict[str, list[StoredEvent]] = {}
        for event in events:
            if not isinstance(event, StoredEvent):
                raise InvalidEventError(
                    f"append_batch takes StoredEvent records, got {type(event).__name__}; "
                    "use save_events for DomainEvent objects"
                )
            groups.setdefault(event.aggregate_id, []).append(event)
        writes = []
        for aggregate_id, stream_events in groups.items():
            first = stream_events[0].version
            for offset, event in enumerate(stream_events):
                if event.version != first + offset:
                    raise InvalidEventError(
                        f"stream {aggregate_id!r}: versions in a batch must be contiguous, got "
                        f"{[e.version for e in stream_events]}"
                    )
            writes.append(self._stream_write(aggregate_id, first - 1, stream_events))
        return await self._write(writes, uow)

    async def save_events(
        self,
        aggregate_id: str,
        events: Sequence[DomainEvent | StoredEvent],
        expected_version: Expected,
        *,
        aggregate_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` to one stream if it is at ``expected_version``.

        :param expected_version: ``0`` (or ``ExpectedVersion.NO_STREAM``) for a new stream, the
            version the caller last saw, ``ExpectedVersion.ANY`` or ``STREAM_EXISTS``.
        :param aggregate_type: for :class:`DomainEvent` objects whose class does not declare one.
        :param metadata: merged into every event's metadata (correlation/causation/user ids).
        :returns: the events as stored, with versions and positions.
        :raises ConcurrencyError: the stream is at another version; nothing was written.

        Versions are assigned by the store (``expected + 1`` onwards). Re-sending a batch that
        was already stored (same event ids, same content) writes nothing and returns it.
        """
        aggregate_id = _check_aggregate_id(aggregate_id)
        expected = _normalize_expected(expected_version)
        if not events:
            return []
        base = expected if isinstance(expected, int) else 0
        stored: list[StoredEvent] = []
        for offset, event in enumerate(events, start=1):
            if isinstance(event, DomainEvent):
                kind = aggregate_type or type(event).aggregate_type
                if not kind:
                    raise InvalidEventError(
                        f"{type(event).__name__} declares no aggregate_type; pass aggregate_type="
                    )
                record = self.registry.to_stored(
                    event,
                    aggregate_id=aggregate_id,
                    aggregate_type=kind,
                    version=base + offset,
                    metadata=metadata,
                )
            elif isinstance(event, StoredEvent):
                if event.aggregate_id != aggregate_id:
                    raise InvalidEventError(
                        f"event {event.event_id} belongs to {event.aggregate_id!r}, "
                        f"not {aggregate_id!r}"
                    )
                record = replace(
                    event,
                    version=base + offset,
                    metadata={**event.metadata, **metadata} if metadata else event.metadata,
                )
            else:
                raise InvalidEventError(
                    f"save_events takes DomainEvent or StoredEvent objects, "
                    f"got {type(event).__name__}"
                )
            stored.append(record)
        return await self._write([self._stream_write(aggregate_id, expected, stored)], uow)

    def _stream_write(
        self, aggregate_id: str, expected: Expected, events: list[StoredEvent]
    ) -> _StreamWrite:
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids):
            raise InvalidEventError(f"stream {aggregate_id!r}: the batch repeats an event_id")
        return _StreamWrite(aggregate_id, expected, events, [event_body(e) for e in events])

    async def _write(
        self, writes: list[_StreamWrite], uow: SessionProvider | None
    ) -> list[StoredEvent]:
        await self._ready()
        total = sum(len(w.events) for w in writes)
        try:
            if uow is not None:
                return await self._write_in_unit_of_work(writes, total, uow)
            preallocated = None
            if self.position_strategy == "preallocated":
                # Advisory check outside the transaction: a writer that has already lost should
                # not burn positions (each would become a permanent gap).
                for write in writes:
                    if isinstance(write.expected, int):
                        await self._check_expected(write.aggregate_id, write.expected, None)
                preallocated = await self._allocate_positions(total, None)
            if not self._transactions:
                return await self._attempt(None, writes, total, preallocated)
            return await run_transaction(
                self.connection.client,
                lambda session: self._attempt(session, writes, total, preallocated),
                time_budget=self._time_budget,
            )
        except _KeyCollision as collision:
            return await self._resolve_collision(collision, writes, None)
        except ConcurrencyError:
            # The expectation failed; if it failed because this very batch is already stored,
            # this is an idempotent retry, not a conflict.
            existing = await self._stored_copies(writes, None)
            if existing:
                return self._idempotent_result(writes, existing)
            raise
        except DocumentTooLarge as exc:
            raise self._too_large(writes) from exc
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc

    async def _write_in_unit_of_work(
        self, writes: list[_StreamWrite], total: int, uow: SessionProvider
    ) -> list[StoredEvent]:
        session = uow.session
        if self._transactions and not session.in_transaction:
            raise UnitOfWorkStateError("the unit of work's session is not in a transaction")
        # Inside a caller's transaction a duplicate key would abort all of the caller's work, so
        # an idempotent retry is detected by a read before writing instead of by the error.
        existing = await self._stored_copies(writes, session)
        if existing:
            return self._idempotent_result(writes, existing)
        preallocated = None
        if self.position_strategy == "preallocated":
            preallocated = await self._allocate_positions(total, None)
        try:
            return await self._attempt(session, writes, total, preallocated)
        except _KeyCollision as collision:
            return await self._resolve_collision(collision, writes, session)

    async def _attempt(
        self,
        session: AsyncClientSession | None,
        writes: list[_StreamWrite],
        total: int,
        preallocated: int | None,
    ) -> list[StoredEvent]:
        bases = [await self._stream_base(w, session) for w in writes]
        first = preallocated
        if first is None:
            first = await self._allocate_positions(total, session)
        recorded_at = utc_now()
        documents: list[dict[str, Any]] = []
        stored: list[StoredEvent] = []
        position = first
        for write, base in zip(writes, bases, strict=True):
            for offset, (event, body) in enumerate(zip(write.events, write.bodies, strict=True)):
                version = base + offset + 1
                documents.append(
                    {**body, "version": version, "position": position, "recorded_at": recorded_at}
                )
                stored.append(
                    replace(
                        event,
                        version=version,
                        occurred_at=body["occurred_at"],
                        position=position,
                        recorded_at=recorded_at,
                    )
                )
                position += 1
        try:
            await self.events.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as exc:
            raise _collision_or_reraise(exc) from exc
        return stored

    async def _stream_base(self, write: _StreamWrite, session: AsyncClientSession | None) -> int:
        """The version the new events follow, after checking the expectation."""
        expected = write.expected
        if isinstance(expected, int):
            await self._check_expected(write.aggregate_id, expected, session)
            return expected
        current = await self._current_version(write.aggregate_id, session)
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            raise ConcurrencyError(write.aggregate_id, expected.name, 0)
        return current

    async def _allocate_positions(self, count: int, session: AsyncClientSession | None) -> int:
        """Reserve ``count`` positions with one ``$inc``; returns the first."""
        counter = await self.counters.find_one_and_update(
            {"_id": self._counter_id},
            {"$inc": {"seq": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            projection={"seq": 1},
            session=session,
        )
        assert counter is not None  # upsert=True with AFTER always returns the document
        return int(counter["seq"]) - count + 1

    async def _resolve_collision(
        self,
        collision: _KeyCollision,
        writes: list[_StreamWrite],
        session: AsyncClientSession | None,
    ) -> list[StoredEvent]:
        # Read outside the (aborted) transaction: what is committed decides.
        existing = await self._stored_copies(writes, None)
        if existing:
            return self._idempotent_result(writes, existing)
        if collision.index == "stream_version":
            write = next((w for w in writes if w.aggregate_id == collision.aggregate_id), writes[0])
            if write.expected is ExpectedVersion.ANY and session is None:
                return await self._write(writes, None)  # someone appended first: go after them
            actual = await self._current_version(write.aggregate_id, None)
            expected = write.expected
            shown = expected if isinstance(expected, int) else expected.name
            raise ConcurrencyError(write.aggregate_id, shown, actual)
        raise EventlabError(
            f"duplicate key on index {collision.index!r} of {self.events_collection_name}: the "
            "position counter is behind the stored events (was it reset?)"
        )

    async def _stored_copies(
        self, writes: list[_StreamWrite], session: AsyncClientSession | None
    ) -> list[dict[str, Any]]:
        """Stored documents whose ids are among this write's event ids."""
        ids = [body["_id"] for w in writes for body in w.bodies]
        return await self.events.find({"_id": {"$in": ids}}, session=session).to_list(None)

    def _idempotent_result(
        self, writes: list[_StreamWrite], existing: list[dict[str, Any]]
    ) -> list[StoredEvent]:
        by_id = {doc["_id"]: doc for doc in existing}
        mismatched = []
        result = []
        for write in writes:
            fixed_version = isinstance(write.expected, int)
            for body in write.bodies:
                doc = by_id.get(body["_id"])
                if doc is None or not same_client_content(body, doc, check_version=fixed_version):
                    mismatched.append(body["_id"])
                else:
                    result.append(from_document(doc))
        if mismatched:
            raise DuplicateEventError(sorted(by_id, key=str))
        return result

    def _too_large(self, writes: list[_StreamWrite]) -> DocumentTooLargeError:
        import bson

        for write in writes:
            for body in write.bodies:
                size = len(bson.encode(body))
                if size > self.connection.info.max_bson_object_size - 1024:
                    return DocumentTooLargeError(
                        f"event {body['_id']} ({body['event_type']}) encodes to {size:,} bytes; "
                        f"the server's limit is {self.connection.info.max_bson_object_size:,}"
                    )
        return DocumentTooLargeError("the batch exceeds the server's message size limit")

    async def restore(self, events: Sequence[StoredEvent], *, chunk_size: int = 1000) -> int:
        """Insert exported events exactly as they were (positions and ``recorded_at`` kept).

        For restoring a backup into an empty store: every event must carry a position; the
        unique indexes still refuse duplicate ids, versions or positions (so a failed restore
        names the conflict), and the position counter is moved past the highest restored
        position. Not for live appends: no expected-version check is made.
        """
        await self._ready()
        missing = [e.event_id for e in events if e.position is None]
        if missing:
            raise InvalidEventError(f"{len(missing)} event(s) have no position, e.g. {missing[0]}")
        written = 0
        try:
            for start in range(0, len(events), chunk_size):
                chunk = events[start : start + chunk_size]
                documents = [
                    stored_document(e if e.recorded_at else replace(e, recorded_at=utc_now()))
                    for e in chunk
                ]
                try:
                    await self.events.insert_many(documents, ordered=True)
                except BulkWriteError as exc:
                    first = (exc.details.get("writeErrors") or [{}])[0]
                    raise InvalidEventError(
                        f"restore stopped after {written + exc.details.get('nInserted', 0)} "
                        "events: "
                        f"{first.get('errmsg', exc)}"
                    ) from exc
                written += len(chunk)
        finally:
            await self._seed_counter()
        return written

    # -- reads -----------------------------------------------------------------------------

    async def get_events(
        self,
        aggregate_id: str,
        after_version: int = 0,
        to_version: int | None = None,
        *,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent]:
        """Events of one stream in version order, ``after_version < version <= to_version``."""
        docs = await self._stream_documents(aggregate_id, after_version, to_version, uow)
        return [from_document(doc) for doc in docs]

    async def load_events(
        self,
        aggregate_id: str,
        after_version: int = 0,
        to_version: int | None = None,
        *,
        unknown: UnknownPolicy | None = None,
        uow: SessionProvider | None = None,
    ) -> list[DomainEvent | StoredEvent]:
        """:meth:`get_events` as typed domain events (upcast), through the registry.

        Unknown types follow ``unknown`` (default: the registry's policy): raise
        :class:`UnknownEventTypeError`, or return the raw :class:`StoredEvent`.
        """
        docs = await self._stream_documents(aggregate_id, after_version, to_version, uow)
        to_domain = self.registry.document_to_domain
        return [to_domain(doc, unknown=unknown) for doc in docs]

    async def _stream_documents(
        self,
        aggregate_id: str,
        after_version: int,
        to_version: int | None,
        uow: SessionProvider | None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"aggregate_id": _check_aggregate_id(aggregate_id)}
        after_version = _check_int(after_version, "after_version")
        # No version condition for a whole stream: the index already orders it, and the
        # condition measurably slows the embedded server's plan.
        if after_version or to_version is not None:
            query["version"] = {"$gt": after_version}
            if to_version is not None:
                query["version"]["$lte"] = _check_int(to_version, "to_version")
        # The whole stream is wanted: ask for it in one batch instead of the driver's default
        # first batch of 101 documents plus a getMore.
        cursor = self.events.find(
            query, sort=[("version", 1)], batch_size=_STREAM_BATCH, session=_session(uow)
        )
        docs: list[dict[str, Any]] = await self._read(cursor.to_list(None))
        return docs

    async def get_current_version(
        self, aggregate_id: str, *, uow: SessionProvider | None = None
    ) -> int:
        """The stream's last version, 0 for a stream with no events."""
        version: int = await self._read(
            self._current_version(_check_aggregate_id(aggregate_id), _session(uow))
        )
        return version

    async def get_events_after(
        self, position: int, limit: int = 1000, *, event_types: Iterable[str] | None = None
    ) -> list[StoredEvent]:
        """Up to ``limit`` events with ``position > position``, in position order.

        With ``transactional`` positions a reader that resumes from the last position it saw
        never skips an event. With ``preallocated`` positions an event can commit *after* a
        higher position was read; see docs/gaps.md for how to follow such a store safely.
        """
        limit = _check_int(limit, "limit")
        if limit < 1:
            raise ConfigurationError("limit must be >= 1")
        query: dict[str, Any] = {"position": {"$gt": _check_int(position, "position")}}
        if event_types is not None:
            query["event_type"] = {"$in": _check_types(event_types)}
        docs = await self._read(
            self.events.find(query, sort=[("position", 1)], limit=limit).to_list(None)
        )
        return [from_document(doc) for doc in docs]

    def get_events_from_position(
        self,
        position: int = 0,
        batch_size: int = 1000,
        *,
        event_types: Iterable[str] | None = None,
    ) -> EventStream:
        """An async iterator over all events after ``position``, fetched page by page.

        Memory stays flat whatever the store's size: one page of ``batch_size`` events at a
        time, each page a fresh indexed query resuming after the last position seen.
        Usable as ``async for e in store.get_events_from_position(0)`` (and, for code written
        against the older shape, ``async for e in await store.get_events_from_position(0)``).
        """
        return EventStream(self, position, batch_size, event_types)

    async def get_all_events(self) -> list[StoredEvent]:
        """Every event in position order (use :meth:`get_events_from_position` for big stores)."""
        return [event async for event in self.get_events_from_position(0)]

    async def stream_ids(self, aggregate_type: str | None = None) -> list[str]:
        """Distinct aggregate ids (optionally of one aggregate type)."""
        query = {"aggregate_type": aggregate_type} if aggregate_type else {}
        return sorted(await self._read(self.events.distinct("aggregate_id", query)))

    async def count(self) -> int:
        """Number of stored events."""
        total: int = await self._read(self.events.count_documents({}))
        return total

    async def _check_expected(
        self, aggregate_id: str, expected: int, session: AsyncClientSession | None
    ) -> None:
        """Raise :class:`ConcurrencyError` unless version ``expected`` exists and the next does not.

        One indexed read. Only "``expected`` exists" is load-bearing (events are never deleted,
        so it cannot become false); "``expected + 1`` is absent" lets a writer that already lost
        fail before it touches the position counter, which keeps losers from contending there.
        The unique index remains the arbiter for writers racing past this read.
        """
        if expected == 0:
            return  # a new stream: the unique index on version 1 is the whole guard
        wanted = [expected, expected + 1]
        found = {
            doc["version"]
            async for doc in self.events.find(
                {"aggregate_id": aggregate_id, "version": {"$in": wanted}},
                {"version": 1, "_id": 0},
                session=session,
            )
        }
        if expected not in found or expected + 1 in found:
            actual = await self._current_version(aggregate_id, session)
            raise ConcurrencyError(aggregate_id, expected, actual)

    async def _current_version(self, aggregate_id: str, session: AsyncClientSession | None) -> int:
        doc = await self.events.find_one(
            {"aggregate_id": aggregate_id},
            {"version": 1, "_id": 0},
            sort=[("version", -1)],
            session=session,
        )
        return int(doc["version"]) if doc else 0

    async def _read(self, operation: Awaitable[Any]) -> Any:
        await self._ready()
        try:
            return await operation
        except ConnectionFailure as exc:
            raise self.connection.unreachable(exc) from exc


class EventStream:
    """Async iteration over the global order, page by page (see
    :meth:`MongoEventStore.get_events_from_position`)."""

    def __init__(
        self,
        store: MongoEventStore,
        position: int,
        batch_size: int,
        event_types: Iterable[str] | None,
    ) -> None:
        if _check_int(batch_size, "batch_size") < 1:
            raise ConfigurationError("batch_size must be >= 1")
        self._store = store
        self.position = _check_int(position, "position")
        self._batch_size = batch_size
        self._event_types = None if event_types is None else _check_types(event_types)

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StoredEvent]:
        while True:
            page = await self._store.get_events_after(
                self.position, self._batch_size, event_types=self._event_types
            )
            for event in page:
                self.position = event.position or self.position
                yield event
            if len(page) < self._batch_size:
                return

    def __await__(self) -> Generator[Any, None, EventStream]:
        async def itself() -> EventStream:
            return self

        return itself().__await__()


def _collision_or_reraise(exc: BulkWriteError) -> BaseException:
    errors = exc.details.get("writeErrors") or []
    if errors and errors[0].get("code") == 11000:
        first = errors[0]
        pattern = first.get("keyPattern") or {}
        if "_id" in pattern:
            index = "_id"
        elif "version" in pattern:
            index = "stream_version"
        elif "position" in pattern:
            index = "position"
        else:  # servers that omit keyPattern name the index in the message
            message = str(first.get("errmsg", ""))
            index = next(
                (n for n in ("stream_version", "position", "_id_") if f"index: {n}" in message),
                "unknown",
            )
            index = "_id" if index == "_id_" else index
        aggregate_id = (first.get("op") or {}).get("aggregate_id")
        return _KeyCollision(index, aggregate_id)
    return exc


def _session(uow: SessionProvider | None) -> AsyncClientSession | None:
    return uow.session if uow is not None else None


def _check_aggregate_id(aggregate_id: Any) -> str:
    if not isinstance(aggregate_id, str):
        aggregate_id = str(aggregate_id) if aggregate_id is not None else ""
    if not aggregate_id:
        raise InvalidEventError("aggregate_id must be a non-empty string")
    return str(aggregate_id)


def _check_int(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _check_types(event_types: Iterable[str]) -> list[str]:
    names = list(event_types) if not isinstance(event_types, str) else [event_types]
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"event type names must be non-empty strings: {name!r}")
    return names


def _normalize_expected(expected: Any) -> Expected:
    if expected is ExpectedVersion.NO_STREAM:
        return 0
    if isinstance(expected, ExpectedVersion):
        return expected
    if type(expected) is not int or expected < 0:
        raise ConfigurationError(
            f"expected_version must be an int >= 0 or an ExpectedVersion, got {expected!r}"
        )
    return expected
