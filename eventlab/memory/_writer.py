"""The in-memory append pipeline, step for step MongoDB's (``eventlab/_mongo/writer.py``), so
that the same interleavings give the same outcomes on both backends.

``expect`` (outside the transaction first, for ``preallocated`` positions) → positions (in the
transaction for ``transactional``, before it for ``preallocated``) → insert into the events and
each unique index → ``settle``: what the outcome means (the events, an idempotent retry, a
typed error, or "go again"). A duplicate key dooms the transaction it happens in, as on
MongoDB: inside a caller's unit of work the whole unit is then lost and must be run again.
"""

from __future__ import annotations

from typing import Any

from .._core.appends import StreamAppend, idempotent_result, place
from .._core.errors import EventlabError, StreamDeletedError
from .._core.lifecycle import STREAM_DELETED_PERMANENTLY
from .._core.race_points import APPEND_POSITIONS_TAKEN as POSITIONS_TAKEN
from .._core.records import ExpectedVersion, StoredEvent
from .._core.settlement import Appended, KeyCollision, Outcome, Settlement, VersionMismatch
from ..ports import UnitOfWork
from ._database import DuplicateKey, MemoryDatabase, MemoryTransaction
from ._log import MemoryLog, StrategyChanged


class MemoryWriter:
    """Appends one stream's events atomically, by the strategy recorded with the counter."""

    def __init__(self, database: MemoryDatabase, log: MemoryLog, backend: Any, budget: float):
        self._db = database
        self._log = log
        self._tables = log.tables
        self._backend = backend
        self._budget = budget
        self._heads: dict[str, int] = {}
        """The last committed version of each stream seen: where a version search starts."""
        self._settlement = MemorySettlement(self)

    async def append(self, stream: StreamAppend, uow: UnitOfWork | None) -> list[StoredEvent]:
        for _ in range(3):  # a migration moves the strategy once; three is plenty
            try:
                if uow is not None:
                    return await self._append_in_caller_transaction(stream, uow.session)
                return await self._append_own(stream)
            except StrategyChanged:
                continue
        raise EventlabError("the store's position strategy kept changing under this append")

    async def _append_own(self, stream: StreamAppend) -> list[StoredEvent]:
        """An append in its own transaction, gone again while the outcome says so."""
        return await self._settlement.until_settled(
            lambda: self._attempt(stream), [stream], self._budget
        )

    async def _attempt(self, stream: StreamAppend) -> Outcome:
        strategy = self._log.counter.strategy
        checked: int | None = None
        early: int | None = None
        if strategy == "preallocated":
            # Before positions are taken, so that a writer that already lost burns none.
            outcome = self.expect(stream, None)
            if isinstance(outcome, VersionMismatch):
                return outcome
            if isinstance(stream.expected, int):
                checked = outcome  # "version expected exists" cannot become false
            early = await self._log.counter.reserve_now(len(stream.bodies), strategy)

        async def write(uow: UnitOfWork) -> Outcome:
            return await self._write(stream, uow.session, early, checked, own=True)

        result: Outcome = await self._backend.run(write, time_budget=self._budget)
        return result

    async def _write(
        self,
        stream: StreamAppend,
        transaction: MemoryTransaction,
        early: int | None,
        checked: int | None,
        *,
        own: bool,
    ) -> Outcome:
        """Expectation, positions, insert: the body of one transaction."""
        base = checked if checked is not None else self.expect(stream, transaction)
        if isinstance(base, VersionMismatch):
            if own:
                self._db.abort(transaction)
            return base
        count = len(stream.bodies)
        first = (
            early
            if early is not None
            else self._log.counter.reserve(count, "transactional", transaction)
        )
        if POSITIONS_TAKEN.armed:
            await POSITIONS_TAKEN.reach()
        documents, stored = place([stream], [base], first)
        for document in documents:
            try:
                self._insert(document, transaction)
            except DuplicateKey as duplicate:
                if own:
                    self._db.abort(transaction)  # doomed already; ended here, as on MongoDB
                index = _index(duplicate.table, self._tables)
                return KeyCollision(index, stream.aggregate_id, document["position"])
        heads = self._heads
        top = base + count
        transaction.after_commit.append(lambda: _raise(heads, stream.aggregate_id, top))
        transaction.after_commit.append(self._log.notify)
        return Appended(stored)

    def _insert(self, document: dict[str, Any], transaction: MemoryTransaction) -> None:
        # The order of MongoDB's index checks: _id, then (aggregate_id, version), then position.
        position = document["position"]
        self._db.insert(self._tables.ids, document["_id"], position, transaction)
        key = (document["aggregate_id"], document["version"])
        self._db.insert(self._tables.versions, key, position, transaction)
        self._db.insert(self._tables.events, position, document, transaction)

    async def _append_in_caller_transaction(
        self, stream: StreamAppend, transaction: MemoryTransaction
    ) -> list[StoredEvent]:
        # A duplicate key would doom all of the caller's work, so an idempotent retry is
        # detected by a read before writing instead of by the error.
        existing = self.stored_copies(stream, transaction)
        if existing:
            return idempotent_result([stream], existing)
        strategy = self._log.counter.strategy
        early = None
        if strategy == "preallocated":
            early = await self._log.counter.reserve_now(len(stream.bodies), strategy)
        outcome = await self._write(stream, transaction, early, None, own=False)
        return await self._settlement.settle_in_unit_of_work(outcome, [stream])

    # -- reads the writer makes ------------------------------------------------------------------

    def expect(
        self, stream: StreamAppend, transaction: MemoryTransaction | None
    ) -> int | VersionMismatch:
        """The version the new events follow, or the mismatch (as MongoDB's writer reads it:
        for an int expectation, "``expected`` exists and ``expected + 1`` does not")."""
        expected = stream.expected
        if isinstance(expected, int):
            if expected == 0:
                return 0  # a new stream: the unique (aggregate_id, version) is the whole guard
            versions = self._tables.versions
            there = self._db.peek(versions, (stream.aggregate_id, expected), transaction)
            taken = self._db.peek(versions, (stream.aggregate_id, expected + 1), transaction)
            for version, position in ((expected, there), (expected + 1, taken)):
                self._unless_deleted(stream.aggregate_id, version, position, transaction)
            # Above version 1 an archive may have taken versions (it keeps each stream's first
            # event and a suffix live): the stream's head decides there.
            ends_here = there is not None and taken is None
            if ends_here and (
                expected > 1 or self.current_version(stream.aggregate_id, transaction) == 1
            ):
                return expected
            actual, deleted = self.head(stream.aggregate_id, transaction)
            return VersionMismatch(stream.aggregate_id, expected, actual, deleted)
        current, deleted = self.head(stream.aggregate_id, transaction)
        if deleted:
            raise StreamDeletedError(stream.aggregate_id, current)
        if expected is ExpectedVersion.STREAM_EXISTS and current == 0:
            return VersionMismatch(stream.aggregate_id, expected, 0)
        return current

    def _unless_deleted(
        self,
        aggregate_id: str,
        version: int,
        position: int | None,
        transaction: MemoryTransaction | None,
    ) -> None:
        """A permanently deleted stream's marker is its last event forever: an append that
        meets it is refused (docs/lifecycle.md)."""
        if position is None:
            return
        document = self._db.peek(self._tables.events, position, transaction)
        if document is not None and document.get("event_type") == STREAM_DELETED_PERMANENTLY:
            raise StreamDeletedError(aggregate_id, version)

    def head(self, aggregate_id: str, transaction: MemoryTransaction | None) -> tuple[int, bool]:
        """The stream's last version, and whether that event is a permanent deletion marker."""
        version = self.current_version(aggregate_id, transaction)
        if not version:
            return 0, False
        position = self._db.peek(self._tables.versions, (aggregate_id, version), transaction)
        document = self._db.peek(self._tables.events, position, transaction)
        deleted = document is not None and document.get("event_type") == STREAM_DELETED_PERMANENTLY
        return version, deleted

    def current_version(self, aggregate_id: str, transaction: MemoryTransaction | None) -> int:
        """The stream's last version as the transaction sees it (versions are dense)."""
        versions = self._tables.versions
        version = self._heads.get(aggregate_id, 0)
        while version and self._db.peek(versions, (aggregate_id, version), transaction) is None:
            version -= 1
        while self._db.peek(versions, (aggregate_id, version + 1), transaction) is not None:
            version += 1
        if transaction is None:
            _raise(self._heads, aggregate_id, version)
        return version

    def is_tombstone(self, position: int | None) -> bool:
        return self._log.is_tombstone(position)

    def stored_copies(
        self, stream: StreamAppend, transaction: MemoryTransaction | None
    ) -> list[dict[str, Any]]:
        """Stored documents whose ids are among this stream's event ids."""
        found = []
        for body in stream.bodies:
            position = self._db.peek(self._tables.ids, body["_id"], transaction)
            if position is not None:
                found.append(self._db.get(self._tables.events, position, transaction))
        return found


def _raise(heads: dict[str, int], aggregate_id: str, version: int) -> None:
    if version > heads.get(aggregate_id, 0):
        heads[aggregate_id] = version


def _index(table: str, tables: Any) -> str:
    return {tables.ids: "_id", tables.versions: "stream_version"}.get(table, "position")


class MemorySettlement(Settlement):
    """Settles the in-memory store's appends by what its tables hold (committed only)."""

    def __init__(self, writer: MemoryWriter) -> None:
        self._writer = writer

    async def stored_copies(self, batch: list[StreamAppend]) -> list[dict[str, Any]]:
        return [doc for stream in batch for doc in self._writer.stored_copies(stream, None)]

    async def stream_head(self, aggregate_id: str) -> tuple[int, bool]:
        return self._writer.head(aggregate_id, None)

    async def abandoned(self, position: int | None) -> bool:
        return self._writer.is_tombstone(position)

    def counter_behind(self, collision: KeyCollision) -> EventlabError:
        return EventlabError(
            f"duplicate key on index {collision.index!r}: the position counter is behind the "
            "stored events"
        )
