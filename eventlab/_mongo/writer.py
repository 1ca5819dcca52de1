"""The event writer: one append, as one straight pipeline.

``prepare`` → (``reserve_early``) → one transaction: ``expect`` · ``first_position`` · ``insert``
→ ``settle``. Each attempt returns what happened as a value (:class:`Appended`,
:class:`VersionMismatch`, :class:`KeyCollision`); :meth:`EventWriter.settle` alone decides
what that means for the caller (the events, an idempotent retry, a typed error, or "go again").

Why the expectation guard is safe without a read-then-insert race (docs/positions.md): version
``expected`` must exist (a read; events are never deleted, so once seen it stays true) and the
unique index on ``(aggregate_id, version)`` rejects anything already at ``expected + 1``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar, overload

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, DocumentTooLarge, PyMongoError

from .._core import telemetry as telemetry
from .._core.appends import StreamAppend, conflict, idempotent_result
from .._core.domain import utc_now
from .._core.errors import (
    DeploymentError,
    DocumentTooLargeError,
    DuplicateEventError,
    PositionsAbandonedError,
    SerializationError,
    TransactionTimeoutError,
    TransientError,
    UnitOfWorkStateError,
)
from .._core.event_codec import oversized_event, unencodable_int
from .._core.race_points import APPEND_POSITIONS_TAKEN
from .._core.records import ExpectedVersion, StoredEvent
from .._core.retry import backoff_delay
from ..ports import UnitOfWork
from .positions import ALLOCATORS, PositionAllocator, StrategyChanged
from .readers import StreamReader
from .schema import EventStoreSchema
from .transaction_policy import map_error
from .transactions import run_transaction

T = TypeVar("T")
Expected = int | ExpectedVersion


# -- what happened -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Appended:
    """The batch committed; here are its events with versions and positions."""

    events: list[StoredEvent]


@dataclass(frozen=True, slots=True)
class VersionMismatch:
    """A stream was not at the expected version (read before writing; nothing written)."""

    aggregate_id: str
    expected: Expected
    actual: int


@dataclass(frozen=True, slots=True)
class KeyCollision:
    """The insert hit a unique index (``_id``, ``stream_version`` or ``position``)."""

    index: str
    aggregate_id: str | None
    position: int | None = None


Outcome = Appended | VersionMismatch | KeyCollision


# -- the writer --------------------------------------------------------------------------------


class EventWriter:
    """Appends batches atomically, with per-stream expectations and global positions.

    How positions are taken follows the strategy recorded with the store's counter
    (:class:`~eventlab._mongo.schema.StoreMode`); a migration of the store under a running writer is
    noticed by the next ``$inc`` (:class:`StrategyChanged`) and followed.

    :param schema: the store's collections and bootstrap.
    :param streams: reads a stream's current version.
    :param time_budget: seconds for transient retries and for an append that keeps going
        again (an ``ANY`` append losing races, positions abandoned by a follower).
    """

    def __init__(
        self, schema: EventStoreSchema, streams: StreamReader, *, time_budget: float
    ) -> None:
        self._schema = schema
        self._streams = streams
        self._time_budget = time_budget
        self._allocator: PositionAllocator | None = None
        self._transactions = True

    @property
    def _events(self) -> AsyncCollection[dict[str, Any]]:
        return self._schema.events

    async def _resolve(self, *, again: bool = False) -> PositionAllocator:
        """The allocator of the store's recorded strategy (read again after a migration)."""
        if self._allocator is None or again:
            mode = await (self._schema.reload() if again else self._schema.ready())
            self._allocator = ALLOCATORS[mode.positions](
                self._schema.counters, self._schema.counter_id
            )
            self._transactions = mode.transactions
        return self._allocator

    async def append(
        self, batch: list[StreamAppend], uow: UnitOfWork | None = None
    ) -> list[StoredEvent]:
        """Store ``batch`` atomically (all or none) and return it as stored."""
        try:
            await self._resolve()
            for _ in range(3):  # a migration moves the strategy once; three is plenty
                try:
                    if uow is not None:
                        return await self._append_in_caller_transaction(batch, uow.session)
                    return await self._append_own(batch)
                except StrategyChanged:
                    await self._resolve(again=True)
            raise TransientError("the store's position strategy kept changing under this append")
        except DocumentTooLarge as exc:
            raise self._too_large(batch) from exc
        except OverflowError as exc:
            raise _int_too_large(batch) from exc
        except DeploymentError as exc:
            # A server that refuses a document over its size limit answers with an error of
            # its own (a refusal here): name the event instead, if one is too large.
            too_large = self._too_large(batch, only_if_found=True)
            if too_large is None:
                raise
            raise too_large from exc
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:  # outside a transaction: the preallocated counter's $inc
            raise map_error(exc) from exc

    async def _append_own(self, batch: list[StreamAppend]) -> list[StoredEvent]:
        """An append in its own transaction, gone again while the outcome says so."""
        deadline = time.monotonic() + self._time_budget
        attempt = 0
        while True:
            settled = await self.settle(await self._attempt(batch), batch)
            if settled is not None:
                return settled
            # An ANY append lost a race, or a follower abandoned this append's preallocated
            # positions before it inserted: go again (with fresh positions), after the winner.
            attempt += 1
            if time.monotonic() >= deadline:
                raise TransactionTimeoutError(
                    f"an append kept having to go again (ExpectedVersion.ANY losing races, or "
                    f"its positions abandoned by followers) for {self._time_budget:g}s"
                )
            await asyncio.sleep(backoff_delay(attempt))

    async def _attempt(self, batch: list[StreamAppend]) -> Outcome:
        """One try: a transaction (its transient failures retried by the runner)."""
        allocator = await self._resolve()
        count = _count(batch)
        checked: dict[str, int] = {}
        if allocator.positions_survive_aborts:
            # Before positions are taken: a writer that has already lost must not burn them
            # (each would become a permanent hole in the log). What this read establishes for
            # an int expectation ("version expected exists") can never become false, as events
            # are never deleted, so the transaction need not read it again.
            outcome = await self._expect_all(batch, None)
            if isinstance(outcome, VersionMismatch):
                return outcome
            checked = outcome
        early = await allocator.reserve_early(count)
        if APPEND_POSITIONS_TAKEN.armed and early is not None:
            await APPEND_POSITIONS_TAKEN.reach()
        if not self._transactions:
            return await self._write(batch, allocator, early, None, checked, own_transaction=False)
        return await run_transaction(
            self._schema.connection.client,
            lambda session: self._write(
                batch, allocator, early, session, checked, own_transaction=True
            ),
            time_budget=self._time_budget,
            on_retry=telemetry.retried,
        )

    async def _write(
        self,
        batch: list[StreamAppend],
        allocator: PositionAllocator,
        early: int | None,
        session: AsyncClientSession | None,
        checked: dict[str, int],
        *,
        own_transaction: bool,
    ) -> Outcome:
        """Expectations, positions, insert: the body of one transaction.

        ``checked`` holds the bases of streams whose int expectation was already verified.
        """
        bases: list[int] = []
        for stream in batch:
            known = checked.get(stream.aggregate_id)
            base = known if known is not None else await self._expect(stream, session)
            if isinstance(base, VersionMismatch):
                if own_transaction and session is not None:
                    await session.abort_transaction()
                return base
            bases.append(base)
        first = await allocator.first_position(_count(batch), early, session)
        if APPEND_POSITIONS_TAKEN.armed and early is None:  # preallocated: reached on taking
            await APPEND_POSITIONS_TAKEN.reach()
        documents, stored = _place(batch, bases, first)
        try:
            await self._events.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as exc:
            collision = _key_collision(exc)
            if collision is None:
                raise
            if own_transaction and session is not None and session.in_transaction:
                await session.abort_transaction()
            return collision
        return Appended(stored)

    async def settle(self, outcome: Outcome, batch: list[StreamAppend]) -> list[StoredEvent] | None:
        """What an attempt outside a caller's transaction means: the events, or ``None`` to go
        again; raises the typed error otherwise. What is committed decides."""
        if isinstance(outcome, Appended):
            return outcome.events
        existing = await self._stored_copies(batch, None)
        if existing:  # this very batch is already stored: an idempotent retry
            return idempotent_result(batch, existing)
        if isinstance(outcome, VersionMismatch):
            raise conflict(outcome.aggregate_id, outcome.expected, outcome.actual)
        if outcome.index == "stream_version":
            stream = _stream_of(batch, outcome.aggregate_id)
            if stream.expected is ExpectedVersion.ANY:
                return None
            actual = await self._streams.version_of(stream.aggregate_id, None)
            raise conflict(stream.aggregate_id, stream.expected, actual)
        if outcome.index == "position" and await self._abandoned(outcome):
            return None
        raise self._counter_behind(outcome)

    async def _abandoned(self, collision: KeyCollision) -> bool:
        """Whether the position an insert collided on holds a tombstone: a follower gave up
        waiting for it (docs/positions.md, "Holes")."""
        if collision.position is None:
            return False
        doc = await self._events.find_one({"position": collision.position}, {"gap": 1})
        return bool(doc and doc.get("gap"))

    async def _append_in_caller_transaction(
        self, batch: list[StreamAppend], session: AsyncClientSession
    ) -> list[StoredEvent]:
        if self._transactions and not session.in_transaction:
            raise UnitOfWorkStateError("the unit of work's session is not in a transaction")
        # A duplicate key would abort all of the caller's work, so an idempotent retry is
        # detected by a read before writing instead of by the error.
        existing = await self._stored_copies(batch, session)
        if existing:
            return idempotent_result(batch, existing)
        allocator = await self._resolve()
        early = await allocator.reserve_early(_count(batch))
        if APPEND_POSITIONS_TAKEN.armed and early is not None:
            await APPEND_POSITIONS_TAKEN.reach()
        outcome = await self._write(batch, allocator, early, session, {}, own_transaction=False)
        if isinstance(outcome, Appended):
            return outcome.events
        if isinstance(outcome, VersionMismatch):
            raise conflict(outcome.aggregate_id, outcome.expected, outcome.actual)
        # The server has aborted the caller's transaction: nothing of it will commit, so this
        # is never reported as success, whatever is stored outside it.
        if outcome.index == "stream_version":
            stream = _stream_of(batch, outcome.aggregate_id)
            actual = await self._streams.version_of(stream.aggregate_id, None)
            raise conflict(stream.aggregate_id, stream.expected, actual)
        if outcome.index == "_id":
            raise DuplicateEventError([body["_id"] for s in batch for body in s.bodies])
        if outcome.index == "position" and await self._abandoned(outcome):
            raise PositionsAbandonedError(
                f"position {outcome.position} was recorded as a permanent gap by a follower "
                "before this unit of work's append reached it (the append took longer than "
                "the followers' gap_timeout between reserving and inserting); nothing of the "
                "unit of work is stored: run it again"
            )
        raise self._counter_behind(outcome)

    # -- expectations --------------------------------------------------------------------------

    async def _expect_all(
        self, batch: list[StreamAppend], session: AsyncClientSession | None
    ) -> dict[str, int] | VersionMismatch:
        """Check every int expectation; the verified bases, or the first mismatch."""
        bases = {}
        for stream in batch:
            if isinstance(stream.expected, int):
                base = await self._expect(stream, session)
                if isinstance(base, VersionMismatch):
                    return base
                bases[stream.aggregate_id] = base
        return bases

    async def _expect(
        self, stream: StreamAppend, session: AsyncClientSession | None
    ) -> int | VersionMismatch:
        """The version the new events follow, or the mismatch.

        For an ``int`` expectation one indexed read: only "``expected`` exists" is load-bearing
        (events are never deleted); "``expected + 1`` is absent" lets a writer that already lost
        fail before it touches the position counter, which keeps losers from contending there.
        The unique index remains the arbiter for writers racing past this read.
        """
        expected = stream.expected
        if isinstance(expected, int):
            if expected == 0:
                return 0  # a new stream: the unique index on version 1 is the whole guard
            wanted = [expected, expected + 1]
            found = {
                doc["version"]
                async for doc in self._events.find(
                    {"aggregate_id": stream.aggregate_id, "version": {"$in": wanted}},
                    {"version": 1, "_id": 0},
                    session=session,
                )
            }
            if expected in found and expected + 1 not in found:
                return expected
            actual = await self._streams.version_of(stream.aggregate_id, session)
            return VersionMismatch(stream.aggregate_id, expected, actual)
        current = await self._streams.version_of(stream.aggregate_id, session)
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            return VersionMismatch(stream.aggregate_id, expected, 0)
        return current

    # -- settling helpers ----------------------------------------------------------------------

    async def _stored_copies(
        self, batch: list[StreamAppend], session: AsyncClientSession | None
    ) -> list[dict[str, Any]]:
        """Stored documents whose ids are among this batch's event ids."""
        ids = [body["_id"] for s in batch for body in s.bodies]
        return await self._events.find({"_id": {"$in": ids}}, session=session).to_list(None)

    def _counter_behind(self, collision: KeyCollision) -> DeploymentError:
        return DeploymentError(
            f"duplicate key on index {collision.index!r} of {self._schema.events_collection_name}:"
            " the position counter is behind the stored events (was it reset?)"
        )

    @overload
    def _too_large(
        self, batch: list[StreamAppend], *, only_if_found: Literal[False] = False
    ) -> DocumentTooLargeError: ...

    @overload
    def _too_large(
        self, batch: list[StreamAppend], *, only_if_found: Literal[True]
    ) -> DocumentTooLargeError | None: ...

    def _too_large(
        self, batch: list[StreamAppend], *, only_if_found: bool = False
    ) -> DocumentTooLargeError | None:
        limit = self._schema.connection.info.max_bson_object_size
        found = oversized_event((body for stream in batch for body in stream.bodies), limit)
        if found is not None or only_if_found:
            return found
        return DocumentTooLargeError("the batch exceeds the server's message size limit")


def _int_too_large(batch: list[StreamAppend]) -> SerializationError:
    found = unencodable_int(body for stream in batch for body in stream.bodies)
    return found or SerializationError(
        "an integer in the batch does not fit BSON's 64-bit integers"
    )


def _count(batch: list[StreamAppend]) -> int:
    return sum(len(s.events) for s in batch)


def _place(
    batch: list[StreamAppend], bases: list[int], first: int
) -> tuple[list[dict[str, Any]], list[StoredEvent]]:
    """The documents to insert and the events to return: versions and positions filled in."""
    recorded_at = utc_now()
    documents: list[dict[str, Any]] = []
    stored: list[StoredEvent] = []
    position = first
    for stream, base in zip(batch, bases, strict=True):
        for offset, (event, body) in enumerate(zip(stream.events, stream.bodies, strict=True)):
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
    return documents, stored


def _stream_of(batch: list[StreamAppend], aggregate_id: str | None) -> StreamAppend:
    return next((s for s in batch if s.aggregate_id == aggregate_id), batch[0])


def _key_collision(exc: BulkWriteError) -> KeyCollision | None:
    """The unique index a bulk insert hit, or ``None`` when the error is not a duplicate key."""
    errors = exc.details.get("writeErrors") or []
    if not errors or errors[0].get("code") != 11000:
        return None
    first = errors[0]
    op = first.get("op") or {}
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
    return KeyCollision(index, op.get("aggregate_id"), op.get("position"))
