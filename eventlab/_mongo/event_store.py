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

import time
from collections.abc import Sequence, Sized
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from .._aggregates.forgetting import ForgetsSubjects
from .._aggregates.lifecycle import StreamLifecycleService
from .._aggregates.stream_reads import ReadsStreams
from .._archive import ArchivesEvents
from .._core import telemetry as telemetry
from .._core.appends import prepare_stream
from .._core.checks import check_name, check_positive
from .._core.domain import DomainEvent, utc_now
from .._core.errors import StreamDeletedError
from .._core.lifecycle import kept, narrowed
from .._core.records import ExpectedVersion, StoredEvent, StreamVersions
from .._core.registry import EventRegistry
from .._core.store_options import DEFAULT_TIME_BUDGET, StoreOptions, registry_or_new
from .._follow.store_methods import ReadAllAndSubscribe
from .._shred.keys import KeyStore
from .._shred.personal_data import PersonalData
from ..ports import PositionStrategy, SnapshotStore, UnitOfWork
from .archive_host import MongoArchiveHost
from .backend import MongoBackend
from .connection import MongoConnectionManager
from .lifecycle import MongoLifecycleStorage
from .log import MongoLog
from .migrations import MigrationResult
from .readers import StreamReader, guarded
from .restore import restore
from .schema import EventStoreSchema
from .session import session_of
from .tombstones import NOT_A_TOMBSTONE
from .write_access import WriteAccess
from .writer import EventWriter

__all__ = ["MongoEventStore", "PositionStrategy", "UnitOfWork"]

Expected = int | ExpectedVersion


class MongoEventStore(ReadsStreams, ReadAllAndSubscribe, ForgetsSubjects, ArchivesEvents):
    """An append-only event store on MongoDB with optimistic concurrency and a global order.

    :param connection: a :class:`~eventlab.MongoConnectionManager` (connected before first use).
    :param registry: the :class:`~eventlab.EventRegistry` for typed events (``append`` of
        :class:`DomainEvent` objects and typed reads).
    :param events_collection: collection of events (validated name).
    :param counters_collection: collection holding the global position counter.
    :param positions: how a new store takes positions: ``"transactional"`` (default where
        transactions exist: contiguous, commit-ordered positions) or ``"preallocated"``
        (appends overlap; holes where an append aborts, which followers wait for, then
        abandon). Recorded with the store's counter when it is created; an existing store
        keeps its own, and asking for the other is a :class:`~eventlab.ConfigurationError`
        (:meth:`change_position_strategy` migrates). See ``docs/positions.md``.
    :param require_replica_set: refuse to run without transactions (default). ``False`` runs on a
        standalone server with a loud warning: batches are then not atomic and positions can gap.
    :param auto_migrate: apply the index migrations on first use (the unique indexes are what
        makes concurrency safe, so turning this off is only for managed deployments that run
        :meth:`migrate` themselves).
    :param query_indexes: also create the opt-in query indexes (by aggregate type and time, by
        correlation id, by event type in log order). Off by default: each secondary index costs
        every append (docs/positions.md, "Indexes").
    :param transaction_time_budget: seconds to keep retrying transient transaction failures.
    :param keys: a :class:`~eventlab.KeyStore` (:class:`~eventlab.MongoKeyStore`): events'
        ``Personal`` fields are sealed with their subject's key at append and opened on every
        read; :meth:`forget` destroys a subject's key (docs/forgetting.md).

    Writing: :meth:`append` (to one stream, at an expected version; several streams
    atomically through a unit of work). Reading: :meth:`read_stream` (one stream, forwards or
    backwards; :meth:`read_domain_events` decodes it into domain events), :meth:`read_all`
    (the log from a position to the head) and :meth:`subscribe` (the log, then new events
    live). :meth:`archive` moves old events into Parquet files that every read reads
    through (docs/archive.md).
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
        keys: KeyStore | None = None,
    ) -> None:
        self.connection = connection
        self.registry = registry_or_new(registry)
        self.options = StoreOptions(positions, transaction_time_budget)
        self._schema = EventStoreSchema(
            connection,
            events_collection=events_collection,
            counters_collection=counters_collection,
            positions=self.options.positions,
            require_replica_set=require_replica_set,
            auto_migrate=auto_migrate,
            query_indexes=query_indexes,
        )
        self.events_collection_name = self._schema.events_collection_name
        self.counters_collection_name = self._schema.counters_collection_name
        self._time_budget = self.options.transaction_time_budget
        self._stream_reader = StreamReader(self._schema)
        self._log = MongoLog(self._schema)
        self._lifecycle = MongoLifecycleStorage(self._schema, self._log.archive_reader)
        self._event_writer = EventWriter(
            self._schema, self._stream_reader, time_budget=self._time_budget
        )
        if keys is not None:
            self.personal = self._log.personal = PersonalData(keys, self.registry)

    # -- configuration ---------------------------------------------------------------------

    @property
    def backend(self) -> MongoBackend:
        """Where this store's checkpoints, snapshots and read models live: the same database."""
        return MongoBackend(self.connection)

    @property
    def log(self) -> MongoLog:
        """The log as followers read it (the :class:`~eventlab.ports.EventLog` port)."""
        return self._log

    @property
    def position_strategy(self) -> PositionStrategy:
        """The store's strategy: the one recorded with its counter once the store has been
        used (before that, the one asked for, or ``"transactional"``)."""
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

    def write_access(self) -> WriteAccess:
        """The seam through which writers beside this store's own (``MongoDCBStore``) use its
        events collection, counter, readiness and transactions (see :class:`WriteAccess`)."""
        return WriteAccess(self._schema, self._log, self._time_budget)

    def lifecycle(self, *, snapshots: SnapshotStore | None = None) -> StreamLifecycleService:
        """Delete, truncate and cap this store's streams, and scavenge what that allows
        (docs/lifecycle.md); ``snapshots``: where its aggregates' snapshots live (default: the
        backend's)."""
        return StreamLifecycleService(self, self._lifecycle, snapshots)

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

    async def change_position_strategy(self, positions: PositionStrategy) -> bool:
        """Migrate the store to another position strategy; whether it changed.

        Safe while appends and followers run: from the moment it applies no append takes a
        position the old way (the strategy is checked in the counter's ``$inc``), and
        followers keep looking at every position taken before it (docs/positions.md,
        "Changing a store's strategy").
        """
        return await self._schema.change_strategy(positions)

    # -- writes ----------------------------------------------------------------------------

    async def append(
        self,
        aggregate_id: str,
        events: Sequence[DomainEvent | StoredEvent],
        expected_version: Expected,
        *,
        aggregate_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` to one stream if it is at ``expected_version``.

        :param expected_version: ``0`` (or ``ExpectedVersion.NO_STREAM``) for a new stream, the
            version the caller last saw, ``ExpectedVersion.ANY`` or ``STREAM_EXISTS``.
        :param aggregate_type: for :class:`DomainEvent` objects whose class does not declare one.
        :param metadata: merged into every event's metadata (correlation/causation/user ids).
        :returns: the events as stored, with versions and positions.
        :raises ConcurrencyError: the stream is at another version; nothing was written.
        :raises CommitOutcomeUnknownError: it may have been stored: send the same events (the
            same ids) again, which returns them as stored if they were.

        Versions are assigned by the store (``expected + 1`` onwards). Re-sending a batch that
        was already stored (same event ids, same content) writes nothing and returns it.
        """
        started = time.perf_counter()
        attributes = self._db_attributes("append")
        described = _append_attributes(attributes, aggregate_id, events, expected_version)
        described["eventlab.positions.strategy"] = self.position_strategy
        with telemetry.span(f"append {self.events_collection_name}", described) as span:
            stream = prepare_stream(
                self.registry,
                aggregate_id,
                events,
                expected_version,
                aggregate_type=aggregate_type,
                metadata=telemetry.with_trace_context(metadata),
            )
            if stream is None:
                return []
            if self.personal is not None:
                stream = await self.personal.seal(stream)
            stored = await self._event_writer.append([stream], uow)
            telemetry.appended(span, stored, started, attributes)
            return stored

    def _db_attributes(self, operation: str) -> dict[str, str]:
        """OpenTelemetry's database attributes of an operation on the events collection."""
        return telemetry.db_attributes(
            self.connection.database_name, self.events_collection_name, operation
        )

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
        is made; import as new appends (:meth:`append`) to merge into a live store.
        ``progress``: a tqdm bar (default: for more than 50,000 events).
        """
        with telemetry.span(
            f"restore {self.events_collection_name}", self._db_attributes("restore")
        ) as span:
            written = await restore(
                self._schema,
                events,
                chunk_size=check_positive(chunk_size, "chunk_size"),
                progress=progress,
            )
            if span is not None:
                span.set_attribute("eventlab.events.count", written)
            return written

    # -- reads: one stream -----------------------------------------------------------------

    async def _stream_documents(
        self, aggregate_id: str, versions: StreamVersions, uow: UnitOfWork | None
    ) -> list[dict[str, Any]]:
        with telemetry.span(
            f"read_stream {self.events_collection_name}",
            {**self._db_attributes("read_stream"), "eventlab.stream.id": aggregate_id[:200]},
        ) as span:
            session = session_of(uow)
            # One point read of the stream's metadata: truncation, retention and deletion
            # decide which versions a read returns (docs/lifecycle.md).
            metadata = await self._lifecycle.metadata(aggregate_id, uow)
            count = versions.max_count
            if metadata is not None:
                if metadata.deleted == "permanent":
                    raise StreamDeletedError(aggregate_id, metadata.deleted_version)
                current = 0
                if metadata.max_count is not None:
                    current = await self._stream_reader.current_version(aggregate_id, session)
                versions = narrowed(metadata, versions, current)
            docs = await self._stream_reader.documents(aggregate_id, versions, session)
            whole = StreamVersions(versions.after, versions.to, False, None)
            docs = await self._log.archive_reader.stream(
                aggregate_id,
                versions,
                docs,
                lambda: self._stream_reader.documents(aggregate_id, whole, session),
            )
            docs = kept(docs, None if metadata is None else metadata.cutoff(utc_now()), count)
            if span is not None:
                span.set_attribute("eventlab.events.count", len(docs))
            return docs

    async def get_current_version(self, aggregate_id: str, *, uow: UnitOfWork | None = None) -> int:
        """The stream's last version, 0 for a stream with no events."""
        return await self._stream_reader.current_version(aggregate_id, session_of(uow))

    def _archive_host(self) -> MongoArchiveHost:
        return MongoArchiveHost(self._schema, self._log)

    # -- reads: the log --------------------------------------------------------------------

    async def stream_ids(self, aggregate_type: str | None = None) -> list[str]:
        """Distinct aggregate ids (optionally of one aggregate type)."""
        query = {}
        if aggregate_type is not None:
            query["aggregate_type"] = check_name(aggregate_type, "aggregate_type")
        await self._schema.ready()
        ids: list[str] = await guarded(self._schema, self.events.distinct("aggregate_id", query))
        return sorted(ids)

    async def count(self) -> int:
        """Number of stored events."""
        await self._schema.ready()
        total: int = await guarded(self._schema, self.events.count_documents(NOT_A_TOMBSTONE))
        return total


def _append_attributes(
    attributes: dict[str, str], aggregate_id: Any, events: Any, expected: Any
) -> dict[str, Any]:
    """An append span's attributes beyond the database's (docs/observability.md)."""
    return {
        **attributes,
        "eventlab.stream.id": str(aggregate_id)[:200],
        "eventlab.events.count": len(events) if isinstance(events, Sized) else 0,
        "eventlab.expected_version": str(getattr(expected, "value", expected)),
    }
