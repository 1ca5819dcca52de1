"""The ports: what the application and the read side need from a backend, and what each
backend guarantees, one or two sentences per operation.

Subscriptions, subscribers, projectors, the aggregate store, the outbox relay and the workbench
depend on these protocols only. The MongoDB adapters (``MongoEventStore`` and its companions)
and the in-memory backend (:mod:`eventlab.memory`) fill them in, and the contract suites in
:mod:`eventlab.contracts` check every backend against the same sentences.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeVar, runtime_checkable

from ._core.bson_values import encoded_size, to_bson_value
from ._core.checks import check_aggregate_id, check_int, check_name, check_positive
from ._core.domain import DomainEvent, utc_now
from ._core.errors import ConfigurationError
from ._core.lifecycle import STREAM_DELETED as STREAM_DELETED
from ._core.lifecycle import STREAM_DELETED_PERMANENTLY as STREAM_DELETED_PERMANENTLY
from ._core.lifecycle import ScavengeReport as ScavengeReport
from ._core.lifecycle import StreamMetadata as StreamMetadata
from ._core.records import ExpectedVersion, StoredEvent
from ._core.registry import EventRegistry
from ._core.store_options import PositionStrategy as PositionStrategy
from ._dcb.records import AppendCondition, DecisionRead, Query, TaggedEvent
from ._shred.keys import KeyStore as KeyStore

T = TypeVar("T")


Status = Literal["pending", "claimed", "published", "failed", "dead"]
"""Where an outbox message stands."""


# -- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogHead:
    """The head of the log as one read saw it."""

    position: int
    """The highest position handed out so far (0 for a new store)."""
    strategy: PositionStrategy
    """The strategy recorded with the counter."""
    settled_after: int
    """The head vouches that every position in ``(settled_after, position]`` is settled:
    committed, or never going to be. Below it (and above it, with ``preallocated`` positions) a
    reader must look at each position: ``position`` for ``preallocated``; ``0`` for a
    ``transactional`` store, or the position at which it was migrated from ``preallocated``."""

    def vouches_for(self, after: int, until: int) -> bool:
        """Whether the head vouches that every position in ``(after, until]`` is settled, so
        that a reader need not look at each of them."""
        return after >= self.settled_after and until <= self.position


@dataclass(frozen=True, slots=True)
class LogSlice:
    """What :meth:`EventLog.read` found in a range of positions."""

    events: list[StoredEvent]
    """The events that pass the filters, in position order."""
    through: int
    """The slice covers ``(after, through]``: the range asked for, or less when the read hit
    its ``limit``."""
    present: frozenset[int] | None = None
    """Every position of the slice holding an event (filtered out or not) or a tombstone;
    ``None`` when the read was not asked for them."""
    abandoned: tuple[int, ...] = ()
    """Positions of the slice recorded as permanent gaps (tombstones)."""


@dataclass(frozen=True, slots=True)
class Abandonment:
    """What :meth:`EventLog.abandon` did with each position it was given."""

    abandoned: tuple[int, ...] = ()
    """Now permanent gaps (by this call or an earlier one): no append can commit there."""
    filled: tuple[int, ...] = ()
    """An event committed there first."""
    in_flight: tuple[int, ...] = ()
    """An open transaction holds an event there: it may still commit; look again later."""


KEPT_GAPS = 1000
"""How many of the latest permanent gaps a checkpoint, and a subscription, keep."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A consumer's place in the log: every position up to ``position`` is done with."""

    name: str
    position: int
    updated_at: datetime | None = None
    gaps: tuple[int, ...] = ()
    """Positions found permanently empty (aborted preallocated appends), the latest 1,000."""
    owner: str | None = None
    """The process that holds the consumer's lease and may advance it (``None``: no lease)."""


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The answer to :meth:`CheckpointStore.claim`."""

    granted: bool
    holder: str | None = None
    """Who holds the lease when it was not granted (host, process id)."""
    took_over: bool = False
    """Granted by taking over another owner's expired lease (its session was ended)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as it stood at ``version``.

    Checked like a stream's events when made: the id and the type are non-empty strings
    (never operators), the versions ints from 1 that fit BSON, the state a dict.
    """

    aggregate_id: str
    aggregate_type: str
    version: int
    schema_version: int
    state: dict[str, Any]
    taken_at: datetime | None = None

    def __post_init__(self) -> None:
        check_aggregate_id(self.aggregate_id)
        check_name(self.aggregate_type, "aggregate_type")
        check_positive(self.version, "snapshot version")
        check_positive(self.schema_version, "snapshot schema_version")
        if not isinstance(self.state, dict):
            raise ConfigurationError(
                f"a snapshot's state must be a dict, got {type(self.state).__name__}"
            )


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message to publish. The fields from ``status`` on are the outbox's, filled in by
    :meth:`OutboxStore.claim` and :meth:`OutboxStore.get`.

    :param ordering_key: messages with the same key are published one at a time, in
        ``sequence`` order, by an ``ordered`` outbox.
    :param sequence: the order within the key. :meth:`from_stored_event` uses the event's
        version; left ``None``, an ordered outbox takes the next number of a per-key counter
        inside the saving transaction, so sequence order is commit order.
    :param created_at: when the message was made (the client's clock; informational only:
        neither due times nor order depend on it).
    """

    message_id: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime = field(default_factory=utc_now)
    ordering_key: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    sequence: int | None = None
    status: Status = "pending"
    retry_count: int = 0
    error: str | None = None
    published_at: datetime | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    next_attempt_at: datetime | None = None
    claim_token: str | None = None
    fence: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.message_id, uuid.UUID):  # an event id, say: its canonical text
            object.__setattr__(self, "message_id", str(self.message_id))
        check_name(self.message_id, "message_id")
        check_name(self.event_type, "event_type")
        if self.ordering_key is not None:
            check_name(self.ordering_key, "ordering_key")
        if self.sequence is not None:
            check_int(self.sequence, "sequence")
        for name in ("payload", "headers"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigurationError(
                    f"an outbox message's {name} must be a dict, got "
                    f"{type(getattr(self, name)).__name__}"
                )
        if not isinstance(self.created_at, datetime):
            raise ConfigurationError(f"created_at must be a datetime, got {self.created_at!r:.80}")

    def content(self) -> dict[str, Any]:
        """What identifies the message's content (type, payload, key, headers), as an outbox
        stores it: BSON-exact and within MongoDB's size limit, or a typed error naming why.
        Two saves of one id are the same message when these are equal."""
        where = f"outbox message {self.message_id}"
        converted: dict[str, Any] = to_bson_value(
            {
                "event_type": self.event_type,
                "payload": self.payload,
                "ordering_key": self.ordering_key,
                "headers": self.headers,
            },
            where,
        )
        encoded_size(converted, where)
        return converted

    @classmethod
    def from_stored_event(cls, event: StoredEvent) -> OutboxMessage:
        """The message announcing a :class:`StoredEvent`: keyed by its aggregate id and ordered
        by its version (contiguous per stream, and committed in version order)."""
        return cls(
            message_id=str(event.event_id),
            event_type=event.event_type,
            payload=event.payload,
            created_at=event.occurred_at,
            ordering_key=event.aggregate_id,
            sequence=event.version,
            headers={
                "aggregate_id": event.aggregate_id,
                "aggregate_type": event.aggregate_type,
                "version": event.version,
                "position": event.position,
                **{k: v for k, v in event.metadata.items() if isinstance(v, str | int)},
            },
        )


@dataclass(frozen=True, slots=True)
class OutboxLag:
    """How far behind the relays are, by the store's clock."""

    due: int
    """Messages due for publishing now (pending, failed and due again, or with an ended lease)."""
    oldest_due_seconds: float
    """How long the oldest due message has been due (0 when none is)."""
    in_flight: int
    """Messages under a live claim."""


@dataclass(frozen=True, slots=True)
class ReadModelState:
    """Which generation of a read model is live, by which handlers' version, and which
    replaced generations are still readable."""

    name: str
    generation: int
    version: int
    retired: tuple[tuple[int, datetime], ...] = ()
    """(generation, when it was replaced) of generations kept readable after a swap."""

    @property
    def readable(self) -> set[int]:
        """The generations a reader may read: the live one and the retired ones kept."""
        return {self.generation} | {generation for generation, _ in self.retired}


# -- ports: the log and the streams -----------------------------------------------------------


class UnitOfWork(Protocol):
    """One transaction that writes to any of a backend's stores pass ``uow=`` join."""

    @property
    def session(self) -> Any: ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once this unit's transaction has committed, never if it does not
        (rolled back, failed, or run again as a new unit); a plain function that must not fail."""
        ...


class Wakeups(Protocol):
    """A signal that the log may have grown: woken on appends, or after a timeout."""

    watching: bool
    """Whether appends wake it (``False``: it only times out, the caller polls)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def wait(self, timeout: float) -> None:
        """Return when an append may have happened since the last call, or after ``timeout``."""
        ...

    def wake(self) -> None:
        """Make the current or next :meth:`wait` return at once."""
        ...


class EventLog(Protocol):
    """The global log of a store, as followers read it: positions in commit order where they
    are settled, and a way to abandon a hole for good that an append cannot race past."""

    async def head(self) -> LogHead:
        """The highest position handed out, the strategy and what the head vouches for.

        Read after a range, a head never shows less than that range holds."""
        ...

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
        """The events with ``after < position <= until`` that pass the filters, in position
        order. ``every_position``: also every occupied position of the range (payloads of
        filtered-out events are not read). ``limit``: at most that many documents are looked
        at, and the slice ends at the last of them when it is reached. Tombstones are never
        returned as events."""
        ...

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        """Record each position as a permanent gap unless an append has committed there or
        holds it: exactly one of a tombstone and an event ever exists at a position, and an
        append that loses the race stores nothing."""
        ...

    def wakeups(self, *, mode: Literal["auto", "push", "poll"] = "auto") -> Wakeups:
        """A :class:`Wakeups` for this log (``push``: appends must wake it, or fail)."""
        ...


TimeField = Literal["recorded_at", "occurred_at"]


@dataclass(frozen=True, slots=True)
class LogSelection:
    """What a reader of the log selects (frames, exports): every field narrows it; ``None``
    (or ``after=0``) selects everything. Checked by whoever builds it (the workbench's
    ``FrameQuery``): a backend takes the names as plain strings."""

    streams: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None
    aggregate_types: tuple[str, ...] | None = None
    since: datetime | None = None
    """``since <= t`` on ``time`` (tz-aware)."""
    until: datetime | None = None
    """``t < until`` on ``time`` (tz-aware)."""
    time: TimeField = "recorded_at"
    after: int = 0
    """Positions above this one."""
    last: int | None = None
    """Only the last N events the rest selects."""

    @property
    def whole_log(self) -> bool:
        """Nothing but position bounds: the log read in ranges, nothing filtered."""
        return not (self.streams or self.event_types or self.aggregate_types or self.timed)

    @property
    def timed(self) -> bool:
        return self.since is not None or self.until is not None


@runtime_checkable
class DocumentLog(Protocol):
    """A log that also hands out its stored event documents as they are (MongoDB's), so that
    frames and exports read at the speed of the wire. Tombstones are never handed out."""

    def selected_documents(
        self, selection: LogSelection, through: int, on_progress: Callable[[int], None]
    ) -> AsyncIterator[Sequence[dict[str, Any]]]:
        """The documents ``selection`` selects at positions in ``(selection.after, through]``,
        page by page; the caller reads only a range the log has settled. Pages come in
        position order, but for a read of the whole log (the collection's own order: the
        caller sorts); with ``last``, one page of the last ones. ``on_progress(n)`` is told of
        each page's progress (positions or documents). Values are as BSON stores them, for
        readers that convert them in bulk: datetimes naive (UTC), UUIDs ``bson.Binary`` of
        subtype 4."""
        ...

    async def incarnation(self) -> str:
        """A token of the stored log's identity: it changes when the log is dropped, replaced
        or restored, so that a copy made of one incarnation is never taken for another's."""
        ...


class EventStore(Protocol):
    """Streams under optimistic concurrency, and the log all of them make up."""

    @property
    def log(self) -> EventLog:
        """The log of every stream in position order (:class:`EventLog`)."""
        ...

    @property
    def backend(self) -> Backend:
        """Where this store's checkpoints, snapshots and read models live."""
        ...

    registry: EventRegistry
    """Decodes the store's events into domain events (:meth:`read_domain_events`)."""

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
        """Append ``events`` to one stream, atomically, if it is at ``expected_version``
        (else :class:`~eventlab.ConcurrencyError` and nothing written); versions follow the
        expectation. Sending an event id again with the same content returns it as stored;
        with other content, :class:`~eventlab.DuplicateEventError`."""
        ...

    async def read_stream(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """The events of one stream with ``after_version < version <= to_version``, oldest
        first (newest first ``backwards``), at most ``max_count``."""
        ...

    async def read_domain_events(
        self,
        aggregate_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        backwards: bool = False,
        max_count: int | None = None,
        unknown: Literal["raise", "raw"] | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[DomainEvent | StoredEvent]:
        """The events of :meth:`read_stream` as domain events, upcast; a type the registry does
        not know raises, or stays a :class:`StoredEvent` (``unknown``)."""
        ...

    async def get_current_version(self, aggregate_id: str, *, uow: UnitOfWork | None = None) -> int:
        """The stream's last version, 0 for a stream with no events."""
        ...

    async def count(self) -> int:
        """How many events are stored."""
        ...


class StreamLifecycle(Protocol):
    """Streams that end and history that goes: deletion, truncation, retention, and the
    scavenge that removes what they allow, leaving a tombstone at each removed position
    (``store.lifecycle()``; docs/lifecycle.md)."""

    async def metadata(self, aggregate_id: str) -> StreamMetadata:
        """The stream's truncation, retention and deletion (all unset for an untouched one)."""
        ...

    async def delete(
        self,
        aggregate_id: str,
        expected_version: int | ExpectedVersion,
        *,
        permanent: bool = False,
        reason: str | None = None,
    ) -> StoredEvent:
        """Append the deletion marker if the stream is at ``expected_version`` (else
        :class:`~eventlab.ConcurrencyError`, nothing written: against an append at the same
        expected version exactly one commits) and delete its snapshot. Soft: reads return
        nothing and an append at the marker's version continues the versions; ``permanent``:
        reads and appends raise :class:`~eventlab.StreamDeletedError` for ever."""
        ...

    async def truncate(self, aggregate_id: str, before_version: int) -> StreamMetadata:
        """Reads start at ``before_version`` (only ever forward, at most the next version);
        the versions below become removable, and an older snapshot is deleted."""
        ...

    async def set_retention(
        self,
        aggregate_id: str,
        *,
        max_count: int | None = None,
        max_age: timedelta | float | None = None,
    ) -> StreamMetadata:
        """Reads keep the last ``max_count`` versions and what was recorded within
        ``max_age``; what they hide becomes removable (``None`` lifts a rule)."""
        ...

    async def scavenge(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = 1000,
        now: datetime | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ScavengeReport:
        """Replace every removable event by a tombstone at its position (followers report a
        gap there) and delete snapshots built from removed events; idempotent, so a rerun
        completes an interrupted one. ``dry_run``: report only, write nothing."""
        ...


class DCBStore(Protocol):
    """Dynamic Consistency Boundaries over a store's log (docs/dcb.md): a decision reads the
    events matching a query, decides, and appends on the condition that nothing matching the
    query was recorded after the position it read."""

    async def read(
        self, query: Query | None = None, *, after: int = 0, limit: int | None = None
    ) -> DecisionRead:
        """The events matching ``query`` with ``after < position <= head``, in position order,
        at most ``limit``; ``head`` is taken before any part of the read and bounds every
        part, so every matching event at or below it is among the events (with a full
        ``limit``, ``head`` is the last event read)."""
        ...

    async def append(
        self, events: Sequence[TaggedEvent], condition: AppendCondition | None = None
    ) -> list[StoredEvent]:
        """Store ``events`` atomically at the next positions, unless an event matching
        ``condition``'s query is stored after ``condition.after``: then
        :class:`~eventlab.AppendConditionError` and nothing written. The same events again
        (same ids, same content) are returned as stored; an id stored with other content is
        :class:`~eventlab.DuplicateEventError`."""
        ...


# -- ports: what consumers keep --------------------------------------------------------------


class CheckpointStore(Protocol):
    """How far each named consumer has followed the log, and which process runs it."""

    async def get(self, name: str, uow: UnitOfWork | None = None) -> Checkpoint | None:
        """The stored checkpoint, or ``None`` for a consumer that never saved one (a claim
        alone saves none; a checkpoint saved at 0 is returned)."""
        ...

    async def position(self, name: str) -> int:
        """The stored position, 0 when there is none."""
        ...

    async def save(
        self,
        name: str,
        position: int,
        *,
        expected: int | None = None,
        gaps: Iterable[int] = (),
        owner: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Store ``position``: with ``expected`` only if the stored position is still that
        (``0`` also matches none saved), without it only forward; with ``owner`` only while
        the checkpoint names that owner; otherwise :class:`~eventlab.CheckpointConflictError`."""
        ...

    async def delete(self, name: str) -> bool:
        """Forget a checkpoint and its lease; whether there was one."""
        ...

    async def all(self) -> list[Checkpoint]:
        """Every stored checkpoint, by name."""
        ...

    async def claim(
        self,
        name: str,
        owner: str,
        *,
        lease: float,
        session_id: Any = None,
        holder: str = "",
    ) -> LeaseGrant:
        """Take the lease of ``name`` for ``lease`` seconds if it is free, expired or
        ``owner``'s; taking an expired one over ends the predecessor's session (its open
        transaction) first and makes ``owner`` the checkpoint's owner."""
        ...

    async def renew(self, name: str, owner: str, *, lease: float) -> bool:
        """Extend ``owner``'s lease; ``False`` when it is no longer ``owner``'s."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up now (a standby takes over at once)."""
        ...

    async def holds(self, name: str, owner: str, uow: UnitOfWork) -> bool:
        """Whether ``owner`` holds the lease, written in ``uow``: a takeover and that
        transaction cannot both commit."""
        ...


class SnapshotStore(Protocol):
    """The newest snapshot of each aggregate; a snapshot never moves backwards."""

    async def get(self, aggregate_id: str, uow: UnitOfWork | None = None) -> Snapshot | None:
        """The stored snapshot of ``aggregate_id``, or ``None``."""
        ...

    async def save(self, snapshot: Snapshot, uow: UnitOfWork | None = None) -> bool:
        """Store ``snapshot`` unless one at its version or later is stored; whether it was."""
        ...

    async def delete(self, aggregate_id: str) -> bool:
        """Forget an aggregate's snapshot; whether there was one."""
        ...


class OutboxStore(Protocol):
    """Messages saved with the state they describe, handed to relays by fenced claims: a
    relay whose claim was taken over can change nothing."""

    async def save_messages(
        self, messages: Sequence[OutboxMessage], uow: UnitOfWork | None = None
    ) -> None:
        """Store messages (in ``uow``'s transaction when given); idempotent by id and content,
        another content under a stored id is :class:`~eventlab.DuplicateMessageError`."""
        ...

    async def claim(
        self, worker_id: str, limit: int = 50, lease: float | timedelta = 30.0
    ) -> list[OutboxMessage]:
        """Hand up to ``limit`` due messages to ``worker_id`` until its lease ends, each with a
        fresh claim token; no message is held by two claims at once."""
        ...

    async def mark_published(self, messages: Sequence[OutboxMessage]) -> int:
        """Mark claimed messages published; how many this claim still held."""
        ...

    async def mark_failed(self, message: OutboxMessage, error: str) -> OutboxMessage | None:
        """Record a failed attempt (due again after a backoff, or dead after the last one);
        ``None`` when the claim is no longer held."""
        ...

    async def release(self, messages: Sequence[OutboxMessage]) -> int:
        """Give claimed messages back, due at once; how many this claim still held."""
        ...

    async def renew(self, messages: Sequence[OutboxMessage], lease: float | timedelta) -> set[str]:
        """Extend the lease of claimed messages; the ids whose claim is still held."""
        ...

    async def get(self, message_id: str) -> OutboxMessage | None:
        """One message as stored, or ``None``."""
        ...

    async def counts(self) -> dict[str, int]:
        """Messages per status."""
        ...

    async def lag(self) -> OutboxLag:
        """Due and in-flight messages and the age of the oldest due one."""
        ...


# -- ports: read models -----------------------------------------------------------------------


class Rows(Protocol):
    """The rows of a read model, by key, as a projection's handlers see them."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The row stored under ``key`` (a copy), or ``None``."""
        ...

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store ``row`` under ``key`` (replacing it)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the row under ``key``."""
        ...


class BatchRows(Rows, Protocol):
    """:class:`Rows` of one batch in a unit of work: read once, written once at the end."""

    async def prefetch(self, keys: Iterable[str]) -> None:
        """Read these rows in one go (the others are read on first use)."""
        ...

    async def flush(self) -> None:
        """Write every changed row, in the batch's unit of work."""
        ...


class ReadModelStore(Protocol):
    """The generations of projections' read models, and which one is live."""

    async def exists(self, name: str) -> bool:
        """Whether the read model ``name`` has been made (a read: nothing is created)."""
        ...

    async def state(self, name: str, version: int) -> ReadModelState:
        """The read model's state, created at generation 1 (of ``version``) for a new one."""
        ...

    async def rows(self, name: str, generation: int) -> list[dict[str, Any]]:
        """Every row of a generation, ``_id`` first, by key."""
        ...

    async def count(self, name: str, generation: int) -> int:
        """How many rows a generation holds (an estimate is fine)."""
        ...

    def batch(self, name: str, generation: int, uow: UnitOfWork | None) -> BatchRows:
        """The rows of a generation for one batch written in ``uow``."""
        ...

    async def still_live(self, name: str, generation: int, uow: UnitOfWork) -> bool:
        """Whether ``generation`` is live, written in ``uow``: a swap and that transaction
        cannot both commit."""
        ...

    async def next_generation(self, name: str) -> int:
        """A generation number no reader or earlier rebuild has used."""
        ...

    async def swap(self, name: str, old: int, new: int, version: int, uow: UnitOfWork) -> bool:
        """Make ``new`` live in place of ``old`` (kept readable, retired now); ``False`` when
        ``old`` is no longer the live one."""
        ...

    async def drop_retired(self, name: str, older_than: float) -> list[int]:
        """Drop generations retired more than ``older_than`` seconds ago, and generations no
        state names (rebuilds that died); first made unreadable, then dropped. The live one
        is never dropped. Returns the generations dropped."""
        ...

    def location(self, name: str, generation: int) -> str:
        """Where a generation lives (a collection name), for messages and status."""
        ...


# -- the backend -----------------------------------------------------------------------------


class Backend(Protocol):
    """Where a store's companions live, and how one unit of work spans them."""

    def checkpoints(self) -> CheckpointStore:
        """The backend's checkpoints and leases."""
        ...

    def snapshots(self) -> SnapshotStore:
        """The backend's snapshots."""
        ...

    def read_models(self, prefix: str = "rm_") -> ReadModelStore:
        """The backend's read models, their locations prefixed with ``prefix``."""
        ...

    def outbox(self, name: str = "outbox") -> OutboxStore:
        """An outbox named ``name`` whose saves join this backend's units of work (each
        backend also takes its outbox store's options: retries, backoff, claim lease)."""
        ...

    async def run(
        self,
        work: Callable[[UnitOfWork], Awaitable[T]],
        *,
        session: Any = None,
        time_budget: float | None = None,
    ) -> T:
        """Run ``work(uow)`` in one transaction and commit it; transient failures (typed
        errors that are ``retryable``) rerun ``work`` within the time budget."""
        ...

    def session(self) -> AbstractAsyncContextManager[Any]:
        """A session a consumer runs its transactions in (one per run of a consumer)."""
        ...

    def session_id(self, session: Any) -> Any:
        """What a successor needs to end ``session`` (see :meth:`CheckpointStore.claim`)."""
        ...
