"""The event writer: one append, as one straight pipeline.

``prepare`` → (``reserve_early``) → one transaction: ``expect`` · ``first_position`` · ``insert``
→ ``settle``. Each attempt returns what happened as a value (:class:`Appended`,
:class:`VersionMismatch`, :class:`KeyCollision`); the settlement
(:class:`~eventlab._core.settlement.Settlement`, the same rule on every backend) alone decides
what that means for the caller (the events, an idempotent retry, a typed error, or "go again").
The expectation guard is :class:`~eventlab._mongo.expectations.StreamExpectations`.
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, ConnectionFailure, DocumentTooLarge, PyMongoError

from .._core import telemetry as telemetry
from .._core.appends import StreamAppend, idempotent_result, place
from .._core.errors import (
    DeploymentError,
    TransientError,
    UnitOfWorkStateError,
)
from .._core.race_points import APPEND_POSITIONS_TAKEN
from .._core.records import StoredEvent
from .._core.settlement import Appended, Outcome, VersionMismatch
from ..ports import UnitOfWork
from .append_settlement import MongoSettlement, key_collision, unencodable
from .expectations import StreamExpectations
from .positions import ALLOCATORS, PositionAllocator, StrategyChanged
from .readers import StreamReader
from .schema import EventStoreSchema
from .transaction_policy import map_error
from .transactions import run_transaction


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
        self._expectations = StreamExpectations(schema, streams)
        self._settlement = MongoSettlement(schema, streams)
        self._time_budget = time_budget
        self._allocator: PositionAllocator | None = None
        self._transactions = True

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
            raise self._settlement.too_large(batch) from exc
        except (OverflowError, UnicodeEncodeError) as exc:
            raise unencodable(batch, exc) from exc
        except DeploymentError as exc:
            # A server that refuses a document over its size limit answers with an error of
            # its own (a refusal here): name the event instead, if one is too large.
            too_large = self._settlement.too_large(batch, only_if_found=True)
            if too_large is None:
                raise
            raise too_large from exc
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:  # outside a transaction: the preallocated counter's $inc
            raise map_error(exc) from exc

    async def _append_own(self, batch: list[StreamAppend]) -> list[StoredEvent]:
        """An append in its own transaction, gone again while the outcome says so."""
        return await self._settlement.until_settled(
            lambda: self._attempt(batch), batch, self._time_budget
        )

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
            outcome = await self._expectations.check_all(batch, None)
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
            base = known if known is not None else await self._expectations.check(stream, session)
            if isinstance(base, VersionMismatch):
                if own_transaction and session is not None:
                    await session.abort_transaction()
                return base
            bases.append(base)
        first = await allocator.first_position(_count(batch), early, session)
        if APPEND_POSITIONS_TAKEN.armed and early is None:  # preallocated: reached on taking
            await APPEND_POSITIONS_TAKEN.reach()
        documents, stored = place(batch, bases, first)
        try:
            await self._schema.events.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as exc:
            collision = key_collision(exc)
            if collision is None:
                raise
            if own_transaction and session is not None and session.in_transaction:
                await session.abort_transaction()
            return collision
        return Appended(stored)

    async def _append_in_caller_transaction(
        self, batch: list[StreamAppend], session: AsyncClientSession
    ) -> list[StoredEvent]:
        if self._transactions and not session.in_transaction:
            raise UnitOfWorkStateError("the unit of work's session is not in a transaction")
        # A duplicate key would abort all of the caller's work, so an idempotent retry is
        # detected by a read before writing instead of by the error.
        existing = await self._settlement.stored_copies(batch, session)
        if existing:
            return idempotent_result(batch, existing)
        allocator = await self._resolve()
        early = await allocator.reserve_early(_count(batch))
        if APPEND_POSITIONS_TAKEN.armed and early is not None:
            await APPEND_POSITIONS_TAKEN.reach()
        outcome = await self._write(batch, allocator, early, session, {}, own_transaction=False)
        return await self._settlement.settle_in_unit_of_work(outcome, batch)


def _count(batch: list[StreamAppend]) -> int:
    return sum(len(s.events) for s in batch)
