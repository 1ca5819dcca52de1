"""The in-memory event store: the guarantees of ``MongoEventStore``, with either position
strategy, in process memory.

Its documents, counter and log are laid out as MongoDB's (``_log``), and an append takes the
same steps in the same order (``_writer``), on a database with MongoDB's snapshot isolation
(``_database``): the same interleavings give the same outcomes, holes and tombstones included.
The events' bodies are made by the same code as MongoDB's, so the same payloads are accepted and
refused and an idempotent retry is recognised by the same rule.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._aggregates.forgetting import ForgetsSubjects
from .._aggregates.lifecycle import StreamLifecycleService
from .._aggregates.stream_reads import ReadsStreams
from .._archive import ArchivesEvents
from .._core.appends import prepare_stream
from .._core.bson_values import MAX_DOCUMENT_BYTES
from .._core.checks import check_aggregate_id, check_name
from .._core.domain import DomainEvent, utc_now
from .._core.errors import ConfigurationError, InvalidIdError, StreamDeletedError
from .._core.event_codec import encoded_bodies
from .._core.lifecycle import kept, narrowed
from .._core.records import ExpectedVersion, StoredEvent, StreamVersions
from .._core.registry import EventRegistry
from .._core.store_options import (
    DEFAULT_TIME_BUDGET,
    StoreOptions,
    check_positions,
    registry_or_new,
)
from .._core.tombstones import TOMBSTONE_FIELD
from .._follow.store_methods import ReadAllAndSubscribe
from .._shred.keys import KeyStore
from .._shred.personal_data import PersonalData
from ..ports import PositionStrategy, SnapshotStore, UnitOfWork
from ._archive import MemoryArchiveHost
from ._backend import MemoryBackend
from ._lifecycle import MemoryLifecycleStorage
from ._log import MemoryLog
from ._writer import MemoryWriter


class MemoryEventStore(ReadsStreams, ReadAllAndSubscribe, ForgetsSubjects, ArchivesEvents):
    """An :class:`~eventlab.ports.EventStore` in memory, for fast tests of command handlers,
    aggregates and projections: optimistic concurrency, idempotent appends by event id,
    positions by either strategy, subscriptions woken by appends, as on MongoDB.

    :param backend: the :class:`MemoryBackend` whose database it shares with checkpoints,
        snapshots and read models (default: a new one).
    :param registry: the :class:`~eventlab.EventRegistry` for typed events.
    :param name: the store's name in the backend (several stores can share one backend).
    :param positions: how a new store takes positions, as ``MongoEventStore``'s option:
        ``"transactional"`` (the default: contiguous, commit-ordered) or ``"preallocated"``
        (taken before the append's transaction: holes where appends abort, commits out of
        position order, abandoned by followers with tombstones). Recorded with the store's
        counter; a store keeps its own (:meth:`change_position_strategy` migrates).
    :param transaction_time_budget: seconds to keep retrying transient transaction failures.
    :param keys: a :class:`~eventlab.KeyStore` (:class:`MemoryKeyStore`): personal fields
        sealed at append, opened on read, forgotten by :meth:`forget`, as on MongoDB.
    """

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        registry: EventRegistry | None = None,
        name: str = "events",
        positions: PositionStrategy | None = None,
        transaction_time_budget: float = DEFAULT_TIME_BUDGET,
        keys: KeyStore | None = None,
    ) -> None:
        if backend is not None and not isinstance(backend, MemoryBackend):
            raise ConfigurationError(f"backend must be a MemoryBackend, got {backend!r:.80}")
        self.name = check_store_name(name)
        self.options = StoreOptions(positions, transaction_time_budget)
        self.transaction_time_budget = self.options.transaction_time_budget
        self._backend = backend if backend is not None else MemoryBackend()
        self.registry = registry_or_new(registry)
        self._db = self._backend.database
        self._log = MemoryLog(self._db, self.name)
        self._log.counter.seed(self.options.positions)
        self._writer = MemoryWriter(
            self._db, self._log, self._backend, self.transaction_time_budget
        )
        self._lifecycle = MemoryLifecycleStorage(
            self._db,
            self._log.tables,
            self.name,
            self._log.archive_reader,
            self._log.rewrites,
        )
        if keys is not None:
            self.personal = self._log.personal = PersonalData(keys, self.registry)

    def __repr__(self) -> str:
        return f"<MemoryEventStore {self.name!r}>"

    @property
    def log(self) -> MemoryLog:
        return self._log

    @property
    def backend(self) -> MemoryBackend:
        return self._backend

    @property
    def position_strategy(self) -> PositionStrategy:
        """The store's strategy, as recorded with its counter."""
        return self._log.counter.strategy

    async def change_position_strategy(self, positions: PositionStrategy) -> bool:
        """Migrate the store to another position strategy; whether it changed (see
        :meth:`eventlab.MongoEventStore.change_position_strategy`): appends in flight notice
        at their next position taking and follow; followers keep looking at every position
        taken the old way."""
        return await self._log.counter.change(check_positions(positions))

    def lifecycle(self, *, snapshots: SnapshotStore | None = None) -> StreamLifecycleService:
        """Delete, truncate and cap this store's streams, and scavenge what that allows (see
        :meth:`eventlab.MongoEventStore.lifecycle`)."""
        return StreamLifecycleService(self, self._lifecycle, snapshots)

    # -- writes ----------------------------------------------------------------------------

    async def append(
        self,
        aggregate_id: str,
        events: Sequence[DomainEvent | StoredEvent],
        expected_version: int | ExpectedVersion,
        *,
        aggregate_type: str | None = None,
        metadata: dict[str, Any] | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` to one stream if it is at ``expected_version`` (see
        :meth:`eventlab.MongoEventStore.append`)."""
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
        if self.personal is not None:
            stream = await self.personal.seal(stream)
        _check_sizes(stream.bodies)
        return await self._writer.append(stream, uow)

    # -- reads -----------------------------------------------------------------------------

    async def _stream_documents(
        self, aggregate_id: str, versions: StreamVersions, uow: UnitOfWork | None
    ) -> list[dict[str, Any]]:
        transaction = uow.session if uow is not None else None
        metadata = await self._lifecycle.metadata(aggregate_id, uow)
        count = versions.max_count
        if metadata is not None:
            if metadata.deleted == "permanent":
                raise StreamDeletedError(aggregate_id, metadata.deleted_version)
            head = self._writer.current_version(aggregate_id, transaction)
            versions = narrowed(metadata, versions, head)
        whole = StreamVersions(versions.after, versions.to, False, None)
        documents = await self._log.archive_reader.stream(
            aggregate_id,
            versions,
            self._live_documents(aggregate_id, versions, transaction),
            self._live_reader(aggregate_id, whole, transaction),
        )
        return kept(documents, None if metadata is None else metadata.cutoff(utc_now()), count)

    def _live_reader(
        self, aggregate_id: str, versions: StreamVersions, transaction: Any
    ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
        async def read() -> list[dict[str, Any]]:
            return self._live_documents(aggregate_id, versions, transaction)

        return read

    def _live_documents(
        self, aggregate_id: str, versions: StreamVersions, transaction: Any
    ) -> list[dict[str, Any]]:
        tables = self._log.tables
        head = self._writer.current_version(aggregate_id, transaction)
        top = head if versions.to is None else min(head, versions.to)
        numbers = list(range(versions.after + 1, top + 1))
        if versions.backwards:
            numbers.reverse()
        if versions.max_count is not None:
            numbers = numbers[: versions.max_count]
        documents = []
        for version in numbers:
            position = self._db.peek(tables.versions, (aggregate_id, version), transaction)
            if position is None:
                continue  # archived: the archive reader adds it
            # Copies: what a caller does with its events never reaches the store.
            documents.append(copy.deepcopy(self._db.peek(tables.events, position, transaction)))
        return documents

    def _archive_host(self) -> MemoryArchiveHost:
        return MemoryArchiveHost(self._db, self._log, self.name)

    async def get_current_version(self, aggregate_id: str, *, uow: UnitOfWork | None = None) -> int:
        transaction = uow.session if uow is not None else None
        return self._writer.current_version(check_aggregate_id(aggregate_id), transaction)

    async def stream_ids(self, aggregate_type: str | None = None) -> list[str]:
        """Distinct aggregate ids (optionally of one aggregate type), sorted."""
        kind = None if aggregate_type is None else check_name(aggregate_type, "aggregate_type")
        documents = self._db.view(self._log.tables.events).values()
        return sorted(
            {
                doc["aggregate_id"]
                for doc in documents
                if not doc.get(TOMBSTONE_FIELD) and (kind is None or doc["aggregate_type"] == kind)
            }
        )

    async def count(self) -> int:
        documents = self._db.view(self._log.tables.events).values()
        return sum(1 for doc in documents if not doc.get(TOMBSTONE_FIELD))


def check_store_name(name: Any) -> str:
    """A store's name: a non-empty string of at most 200 characters, as a collection name."""
    checked = check_name(name, "name")
    if len(checked) > 200:
        raise InvalidIdError(f"name must be at most 200 characters, got {len(checked):,}")
    return checked


def _check_sizes(bodies: Sequence[dict[str, Any]]) -> None:
    """What MongoDB refuses: a document over its size limit, an int over 64 bits."""
    encoded_bodies(bodies, MAX_DOCUMENT_BYTES, [None] * len(bodies))
