"""The in-memory event store and its log: the guarantees of ``MongoEventStore`` with
``transactional`` positions, in process memory.

An append writes, in one transaction, the stream's head (so two appenders of one stream
conflict: the second reruns and meets the first's version), the position counter (so appends
serialise and positions commit in position order, with no holes) and its events. The events'
bodies are made by the same code as MongoDB's, so the same payloads are accepted and refused
and an idempotent retry is recognised by the same rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Self, overload

from .._appends import StreamAppend, conflict, idempotent_result, prepare_stream
from .._bson import encoded_size
from .._checks import check_aggregate_id, check_int, check_page_size, check_positive
from .._domain import DomainEvent, utc_now
from .._event_codec import from_document
from .._follow import FollowsItsLog
from .._records import ExpectedVersion, StoredEvent
from .._registry import EventRegistry, UnknownPolicy
from .._tasks import woken
from ..ports import Abandonment, LogHead, LogSlice, PositionStrategy, UnitOfWork
from ._backend import MemoryBackend
from ._database import MemoryDatabase, MemoryTransaction


class MemoryEventStore(FollowsItsLog):
    """An :class:`~eventlab.ports.EventStore` in memory, for fast tests of command handlers,
    aggregates and projections: optimistic concurrency, contiguous positions in commit order,
    idempotent appends by event id, subscriptions woken by appends.

    :param backend: the :class:`MemoryBackend` whose database it shares with checkpoints,
        snapshots and read models (default: a new one).
    :param registry: the :class:`~eventlab.EventRegistry` for typed events.
    :param name: the store's name in the backend (several stores can share one backend).
    """

    position_strategy: PositionStrategy = "transactional"

    def __init__(
        self,
        backend: MemoryBackend | None = None,
        *,
        registry: EventRegistry | None = None,
        name: str = "events",
    ) -> None:
        self._backend = backend if backend is not None else MemoryBackend()
        self.registry = registry if registry is not None else EventRegistry()
        self.name = name
        self._db = self._backend.database
        self._log = MemoryLog(self._db, name)

    def __repr__(self) -> str:
        return f"<MemoryEventStore {self.name!r}>"

    @property
    def log(self) -> MemoryLog:
        return self._log

    @property
    def backend(self) -> MemoryBackend:
        return self._backend

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
        _check_sizes(stream)
        if uow is not None:
            return self._write(stream, uow.session)

        async def in_transaction(unit: UnitOfWork) -> list[StoredEvent]:
            return self._write(stream, unit.session)

        return await self._backend.run(in_transaction)

    def _write(self, stream: StreamAppend, transaction: MemoryTransaction) -> list[StoredEvent]:
        db, tables = self._db, self._log.tables
        existing = [db.get(tables.ids, body["_id"], transaction) for body in stream.bodies]
        if any(position is not None for position in existing):
            docs = [db.get(tables.events, p, transaction) for p in existing if p is not None]
            return idempotent_result([stream], docs)
        current = db.get(tables.heads, stream.aggregate_id, transaction) or 0
        expected = stream.expected
        if isinstance(expected, int) and expected != current:
            raise conflict(stream.aggregate_id, expected, current)
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            raise conflict(stream.aggregate_id, expected, 0)
        count = len(stream.bodies)
        first = (db.get(tables.counter, "seq", transaction) or 0) + 1
        # A position a follower recorded as a permanent gap is never used (as on MongoDB,
        # where the unique position index refuses it and the append takes fresh positions).
        while any(db.get(tables.tombstones, p) for p in range(first, first + count)):
            first += 1
        # The head first: a second appender of this stream conflicts here, reruns, and meets
        # this one's version; then the counter: every appender serialises on it, so positions
        # commit in position order.
        db.put(tables.heads, stream.aggregate_id, current + count, transaction)
        db.put(tables.counter, "seq", first + count - 1, transaction)
        recorded_at = utc_now()
        stored = []
        for offset, body in enumerate(stream.bodies):
            doc = {
                **body,
                "version": current + offset + 1,
                "position": first + offset,
                "recorded_at": recorded_at,
            }
            db.put(tables.events, first + offset, doc, transaction)
            db.put(tables.ids, body["_id"], first + offset, transaction)
            db.put(
                tables.versions,
                (stream.aggregate_id, current + offset + 1),
                first + offset,
                transaction,
            )
            stored.append(from_document(doc))
        transaction.after_commit.append(self._log.notify)
        return stored

    # -- reads -----------------------------------------------------------------------------

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
        uow: UnitOfWork | None = None,
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
        uow: UnitOfWork | None = None,
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
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent] | list[DomainEvent | StoredEvent]:
        """Events of one stream (see :meth:`eventlab.MongoEventStore.read_stream`)."""
        aggregate_id = check_aggregate_id(aggregate_id)
        after_version = check_int(after_version, "after_version")
        top = None if to_version is None else check_int(to_version, "to_version")
        limit = None if max_count is None else check_positive(max_count, "max_count")
        transaction = uow.session if uow is not None else None
        tables = self._log.tables
        head = self._db.get(tables.heads, aggregate_id, transaction) or 0
        versions = list(range(after_version + 1, min(head, top if top is not None else head) + 1))
        if backwards:
            versions.reverse()
        if limit is not None:
            versions = versions[:limit]
        docs = []
        for version in versions:
            position = self._db.get(tables.versions, (aggregate_id, version), transaction)
            docs.append(self._db.get(tables.events, position, transaction))
        if typed:
            return [self.registry.document_to_domain(doc, unknown=unknown) for doc in docs]
        return [from_document(doc) for doc in docs]

    async def get_current_version(self, aggregate_id: str, *, uow: UnitOfWork | None = None) -> int:
        transaction = uow.session if uow is not None else None
        head: int = self._db.get(
            self._log.tables.heads, check_aggregate_id(aggregate_id), transaction
        )
        return head or 0

    async def count(self) -> int:
        return len(self._db.values(self._log.tables.events))


class _Tables:
    def __init__(self, name: str) -> None:
        self.events = f"{name}:events"
        self.ids = f"{name}:ids"
        self.heads = f"{name}:heads"
        self.versions = f"{name}:versions"
        self.counter = f"{name}:counter"
        self.tombstones = f"{name}:tombstones"


class MemoryLog:
    """The :class:`~eventlab.ports.EventLog` of a :class:`MemoryEventStore`."""

    def __init__(self, database: MemoryDatabase, name: str) -> None:
        self._db = database
        self.tables = _Tables(name)
        self._waiters: set[MemoryWakeups] = set()

    def notify(self) -> None:
        for waiter in list(self._waiters):
            waiter.wake()

    async def head(self) -> LogHead:
        position = self._db.get(self.tables.counter, "seq") or 0
        return LogHead(position, "transactional", 0)

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
        events = self._db.values(self.tables.events)
        tombstones = set(self._db.values(self.tables.tombstones))
        types = None if event_types is None else set(event_types)
        kinds = None if aggregate_types is None else set(aggregate_types)
        looked: list[int] = []
        chosen = []
        for position in sorted(p for p in set(events) | tombstones if after < p <= until):
            doc = events.get(position)
            wanted = doc is not None and (
                (types is None or doc["event_type"] in types)
                and (kinds is None or doc["aggregate_type"] in kinds)
            )
            if not every_position and not wanted and (types is not None or kinds is not None):
                continue  # a filtered read looks at the selected events only
            looked.append(position)
            if wanted and doc is not None:
                chosen.append(from_document(doc))
            if limit is not None and len(looked) >= limit:
                until = position
                break
        return LogSlice(
            [e for e in chosen if (e.position or 0) <= until],
            until,
            frozenset(looked) if every_position else None,
            tuple(p for p in looked if p in tombstones),
        )

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        abandoned: list[int] = []
        filled: list[int] = []
        in_flight: list[int] = []
        for position in [check_positive(p, "a position") for p in positions]:
            if self._db.get(self.tables.events, position) is not None:
                filled.append(position)
            elif self._db.held(self.tables.events, position):
                in_flight.append(position)
            else:
                self._db.put(self.tables.tombstones, position, True)
                abandoned.append(position)
        return Abandonment(tuple(abandoned), tuple(filled), tuple(in_flight))

    def wakeups(self, *, mode: Literal["auto", "push", "poll"] = "auto") -> MemoryWakeups:
        return MemoryWakeups(self, watching=mode != "poll")


class MemoryWakeups:
    """Woken by every committed append to the log (or polled, with ``mode="poll"``)."""

    def __init__(self, log: MemoryLog, *, watching: bool) -> None:
        self._log = log
        self._woken = asyncio.Event()
        self.watching = watching

    async def __aenter__(self) -> Self:
        if self.watching:
            self._log._waiters.add(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._log._waiters.discard(self)
        self.watching = False
        self._woken.set()

    async def wait(self, timeout: float) -> None:
        await woken(self._woken, timeout)
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()


def _check_sizes(stream: StreamAppend) -> None:
    """What MongoDB refuses: a document over its size limit, an int over 64 bits."""
    for body in stream.bodies:
        encoded_size(body, f"event {body['_id']} ({body['event_type']})")
