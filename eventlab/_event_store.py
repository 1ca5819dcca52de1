"""The MongoDB event store: a facade over its parts.

======================  =====================================================================
part                    job
======================  =====================================================================
``_schema``             collections, index migrations, counter seeding, readiness (once)
``_positions``          how an append takes positions: one allocator object per strategy
``_writer``             the append pipeline: prepare, expect, take positions, insert, settle
``_readers``            a stream in version order; the log in position order (page by page)
``_restore``            putting an export back, under the writer's position invariants
======================  =====================================================================

New read-side features (subscriptions, projections, snapshots) build on the log reader and the
stream reader, not on this class. docs/design.md shows the path of an append and of a log read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, overload

from pymongo.asynchronous.collection import AsyncCollection

from ._checks import check_name, check_positive
from ._connection import MongoConnectionManager
from ._domain import DomainEvent
from ._event_codec import from_document
from ._migrations import MigrationResult
from ._positions import ALLOCATORS, PositionStrategy
from ._readers import EventStream, LogReader, StreamReader, _guarded
from ._records import ExpectedVersion, StoredEvent
from ._registry import EventRegistry, UnknownPolicy
from ._restore import restore
from ._schema import EventStoreSchema
from ._session import SessionProvider, session_of
from ._subscriptions import CatchUpSubscription, Start, Wake
from ._transactions import DEFAULT_TIME_BUDGET
from ._writer import EventWriter, prepare_records, prepare_stream

__all__ = ["EventStream", "MongoEventStore", "PositionStrategy", "SessionProvider"]

Expected = int | ExpectedVersion


class MongoEventStore:
    """An append-only event store on MongoDB with optimistic concurrency and a global order.

    :param connection: a :class:`~eventlab.MongoConnectionManager` (connected before first use).
    :param registry: the :class:`~eventlab.EventRegistry` for typed events (``save_events`` of
        :class:`DomainEvent` objects and typed reads).
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
    :param query_indexes: also create the opt-in query indexes (by aggregate type and time, by
        correlation id, by event type in log order). Off by default: each secondary index costs
        every append (docs/positions.md, "Indexes").
    :param transaction_time_budget: seconds to keep retrying transient transaction failures.

    Reading: :meth:`read_stream` (one stream, forwards or backwards) and :meth:`read_all` (the
    log from a position). The older names stay as aliases: ``get_events`` and ``load_events``
    (:meth:`read_stream`), ``get_events_from_position``, ``get_events_after`` and
    ``get_all_events`` (:meth:`read_all`).
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
        query_indexes: bool = False,
        transaction_time_budget: float = DEFAULT_TIME_BUDGET,
    ) -> None:
        self.connection = connection
        self.registry = registry if registry is not None else EventRegistry()
        self._schema = EventStoreSchema(
            connection,
            events_collection=events_collection,
            counters_collection=counters_collection,
            positions=positions,
            require_replica_set=require_replica_set,
            auto_migrate=auto_migrate,
            query_indexes=query_indexes,
        )
        self.events_collection_name = self._schema.events_collection_name
        self.counters_collection_name = self._schema.counters_collection_name
        self._time_budget = transaction_time_budget
        self._stream_reader = StreamReader(self._schema)
        self._log_reader = LogReader(self._schema)
        self._event_writer: EventWriter | None = None

    # -- configuration ---------------------------------------------------------------------

    @property
    def position_strategy(self) -> PositionStrategy:
        """The strategy in force (resolved on first use when not given explicitly)."""
        mode = self._schema.mode
        if mode is not None:
            return mode.positions
        return self._schema.requested_positions or "transactional"

    @property
    def transactional(self) -> bool:
        """Whether appends run in transactions (False only with ``require_replica_set=False``
        on a standalone server)."""
        mode = self._schema.mode
        return True if mode is None else mode.transactions

    @property
    def events(self) -> AsyncCollection[dict[str, Any]]:
        """The events collection (for your own queries; never write to it)."""
        return self._schema.events

    @property
    def counters(self) -> AsyncCollection[dict[str, Any]]:
        """The collection holding the position counter."""
        return self._schema.counters

    def describe(self) -> dict[str, Any]:
        """A summary for logs and notebooks."""
        return {
            "database": self.connection.database_name,
            "events_collection": self.events_collection_name,
            "counters_collection": self.counters_collection_name,
            "positions": self.position_strategy,
            "transactions": self.transactional,
        }

    async def migrate(self, *, query_indexes: bool | None = None) -> MigrationResult:
        """Apply the event store's index migrations (idempotent; recorded in ``_migrations``).

        :param query_indexes: also apply the opt-in query index set (default: as constructed).
        """
        return await self._schema.migrate(query_indexes=query_indexes)

    async def _writer(self) -> EventWriter:
        if self._event_writer is None:
            mode = await self._schema.ready()
            allocator = ALLOCATORS[mode.positions](self.counters, self._schema.counter_id)
            self._event_writer = EventWriter(
                self._schema,
                allocator,
                self._stream_reader,
                transactions=mode.transactions,
                time_budget=self._time_budget,
            )
        return self._event_writer

    async def _log(self) -> LogReader:
        await self._schema.ready()
        return self._log_reader

    # -- writes ----------------------------------------------------------------------------

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
        stream = prepare_stream(
            self.registry,
            aggregate_id,
            events,
            expected_version,
            aggregate_type=aggregate_type,
            metadata=metadata,
        )
        if stream is None:
            return []
        return await (await self._writer()).append([stream], uow)

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
        return await (await self._writer()).append(prepare_records(events), uow)

    async def restore(
        self,
        events: Sequence[StoredEvent],
        *,
        chunk_size: int = 1000,
        progress: bool | None = None,
    ) -> int:
        """Insert exported events exactly as they were (positions and ``recorded_at`` kept).

        For restoring a backup: every event must carry a position, and every position must lie
        above those the store has already handed out (an empty store takes any export), so no
        reader ever misses a restored event. The unique indexes still refuse duplicate ids or
        versions (the error names the conflict). Not for live appends: no expected-version check
        is made; import as new appends (``save_events``) to merge into a live store.
        ``progress``: a tqdm bar (default: for more than 50,000 events).
        """
        return await restore(
            self._schema,
            events,
            chunk_size=check_positive(chunk_size, "chunk_size"),
            progress=progress,
        )

    # -- reads: one stream -----------------------------------------------------------------

    @overload
    async def read_stream(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        typed: Literal[False] = False,
        unknown: UnknownPolicy | None = None,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent]: ...

    @overload
    async def read_stream(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        typed: Literal[True],
        unknown: UnknownPolicy | None = None,
        uow: SessionProvider | None = None,
    ) -> list[DomainEvent | StoredEvent]: ...

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        typed: bool = False,
        unknown: UnknownPolicy | None = None,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent] | list[DomainEvent | StoredEvent]:
        """Events of one stream with ``after_version < version <= to_version``.

        :param backwards: newest first (with ``max_count``: the last ``max_count`` events).
        :param max_count: at most this many events.
        :param typed: decode through the registry into :class:`DomainEvent` objects (upcast);
            unknown types follow ``unknown`` (default: the registry's policy: raise
            :class:`UnknownEventTypeError`, or return the raw :class:`StoredEvent`).
        """
        docs = await self._stream_reader.documents(
            aggregate_id,
            after_version=after_version,
            to_version=to_version,
            backwards=backwards,
            max_count=max_count,
            session=session_of(uow),
        )
        if typed:
            to_domain = self.registry.document_to_domain
            return [to_domain(doc, unknown=unknown) for doc in docs]
        return [from_document(doc) for doc in docs]

    async def get_events(
        self,
        aggregate_id: str,
        after_version: int = 0,
        to_version: int | None = None,
        *,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent]:
        """Alias of :meth:`read_stream` (forwards, as :class:`StoredEvent` records)."""
        return await self.read_stream(
            aggregate_id, after_version=after_version, to_version=to_version, uow=uow
        )

    async def load_events(
        self,
        aggregate_id: str,
        after_version: int = 0,
        to_version: int | None = None,
        *,
        unknown: UnknownPolicy | None = None,
        uow: SessionProvider | None = None,
    ) -> list[DomainEvent | StoredEvent]:
        """Alias of :meth:`read_stream` with ``typed=True`` (domain events, upcast)."""
        return await self.read_stream(
            aggregate_id,
            after_version=after_version,
            to_version=to_version,
            typed=True,
            unknown=unknown,
            uow=uow,
        )

    async def get_current_version(
        self, aggregate_id: str, *, uow: SessionProvider | None = None
    ) -> int:
        """The stream's last version, 0 for a stream with no events."""
        return await self._stream_reader.current_version(aggregate_id, session_of(uow))

    # -- reads: the log --------------------------------------------------------------------

    def read_all(
        self,
        after_position: int = 0,
        *,
        max_count: int | None = None,
        event_types: Iterable[str] | None = None,
        page_size: int = 1000,
    ) -> EventStream:
        """The log after ``after_position``, in position order, as an async iterator.

        ``async for event in store.read_all(checkpoint): ...``; ``await ... .to_list()`` for a
        list. Fetched ``page_size`` events at a time, so memory stays flat. With
        ``transactional`` positions a reader that resumes from the last position it saw never
        skips an event; with ``preallocated`` positions an event can commit *after* a higher
        position was read (docs/gaps.md says how to follow such a store safely).
        """
        return EventStream(self, after_position, page_size, event_types, max_count)

    def subscribe(
        self,
        *,
        start: Start = "beginning",
        event_types: Iterable[str] | None = None,
        aggregate_types: Iterable[str] | None = None,
        page_size: int = 500,
        live: bool = True,
        wake: Wake = "auto",
        poll_interval: float = 0.5,
        gap_timeout: float | None = None,
    ) -> CatchUpSubscription:
        """A catch-up subscription: the log after ``start`` in pages, then new events live.

        ``async for event in store.subscribe(): ...``; unlike :meth:`read_all` it never moves
        past a position that may still commit (preallocated positions), and it waits for new
        events instead of ending. See :class:`~eventlab.CatchUpSubscription`; for a named
        checkpoint and a handler, :class:`~eventlab.Subscriber`.
        """
        return CatchUpSubscription(
            self,
            start=start,
            event_types=event_types,
            aggregate_types=aggregate_types,
            page_size=page_size,
            live=live,
            wake=wake,
            poll_interval=poll_interval,
            gap_timeout=gap_timeout,
        )

    def get_events_from_position(
        self,
        position: int = 0,
        batch_size: int = 1000,
        *,
        event_types: Iterable[str] | None = None,
    ) -> EventStream:
        """Alias of :meth:`read_all` (``batch_size`` is its ``page_size``)."""
        return EventStream(self, position, batch_size, event_types)

    async def get_events_after(
        self, position: int, limit: int = 1000, *, event_types: Iterable[str] | None = None
    ) -> list[StoredEvent]:
        """Alias of ``await read_all(position, max_count=limit).to_list()``: one page."""
        limit = check_positive(limit, "limit")  # named as this method's caller knows it
        return await self.read_all(position, max_count=limit, event_types=event_types).to_list()

    async def get_all_events(self) -> list[StoredEvent]:
        """Alias of ``await read_all().to_list()``: every event (mind the store's size)."""
        return await self.read_all().to_list()

    async def stream_ids(self, aggregate_type: str | None = None) -> list[str]:
        """Distinct aggregate ids (optionally of one aggregate type)."""
        query = {}
        if aggregate_type is not None:
            query["aggregate_type"] = check_name(aggregate_type, "aggregate_type")
        await self._schema.ready()
        ids: list[str] = await _guarded(self._schema, self.events.distinct("aggregate_id", query))
        return sorted(ids)

    async def count(self) -> int:
        """Number of stored events."""
        await self._schema.ready()
        total: int = await _guarded(self._schema, self.events.count_documents({}))
        return total
