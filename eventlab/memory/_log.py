"""The in-memory store's documents, its position counter and its log (the
:class:`~eventlab.ports.EventLog` port), laid out as MongoDB's are.

Events sit in one table keyed by position, beside one table per unique index (event ids, and
``(aggregate_id, version)``), so an append inserts into each and meets a duplicate key or a
write conflict exactly where MongoDB's unique indexes would give it one. A tombstone is a
document at a position, like an event: exactly one of the two can exist there, whoever
commits first (docs/positions.md, "Holes"). The counter is one document recording the next
positions and the strategy, written inside each append's transaction (``transactional``) or
before it (``preallocated``).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Sequence
from typing import Any, Literal, Self

from .._archive import ArchiveReader
from .._core.checks import check_positive
from .._core.errors import ConfigurationError, TransactionAbortedError, WriteConflictError
from .._core.event_codec import from_document
from .._core.log_query import LogQuery
from .._core.records import StoredEvent
from .._core.tasks import woken
from .._core.tombstones import TOMBSTONE_FIELD, is_tombstone, tombstone
from .._follow.log_reads import ReadsLogRanges
from ..ports import Abandonment, LogHead, LogSlice, PositionStrategy
from ._archive_marker import MemoryArchiveMarkers
from ._database import DuplicateKey, MemoryDatabase, MemoryTransaction

_COUNTER_KEY = "seq"


class StrategyChanged(Exception):
    """The counter no longer records the strategy an append took positions by: the store was
    migrated; the writer resolves the strategy again and goes on."""


class StoreTables:
    """The table names of one store."""

    def __init__(self, name: str) -> None:
        self.events = f"{name}:events"
        """Position → event or tombstone (the unique ``position`` index)."""
        self.ids = f"{name}:ids"
        """Event id → position (the ``_id`` index)."""
        self.versions = f"{name}:versions"
        """(aggregate id, version) → position (the unique ``stream_version`` index)."""
        self.counter = f"{name}:counter"


class RewriteGeneration:
    """A store's rewrite generation (``MongoLog.rewritten``'s, in memory: a process cannot be
    killed half-way and leave a store behind)."""

    def __init__(self) -> None:
        self.count = 0
        self.rewriting = 0

    def token(self) -> str:
        return f"rewriting:{uuid.uuid4().hex}" if self.rewriting else str(self.count)


class MemoryCounter:
    """The position counter: ``seq`` (the highest position handed out), the strategy, and
    ``unsettled_through`` (positions a migration to ``transactional`` cannot vouch for)."""

    def __init__(self, database: MemoryDatabase, tables: StoreTables) -> None:
        self._db = database
        self._table = tables.counter

    def seed(self, positions: PositionStrategy | None) -> PositionStrategy:
        """Record ``positions`` (default ``transactional``) unless a strategy is recorded, and
        return the recorded one; asking for the other is a configuration error."""
        recorded = self.document()
        if recorded is None:
            chosen = positions or "transactional"
            self._db.put(self._table, _COUNTER_KEY, _counter(0, chosen, 0))
            return chosen
        strategy: PositionStrategy = recorded["strategy"]
        if positions is not None and positions != strategy:
            raise ConfigurationError(
                f"positions={positions!r} was asked for, but this store was created with "
                f"{strategy!r} positions (recorded with its counter): leave positions out to "
                "use the store's, or change the store's strategy with "
                "`await store.change_position_strategy(...)` (docs/positions.md)"
            )
        return strategy

    def document(self, transaction: MemoryTransaction | None = None) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._db.peek(self._table, _COUNTER_KEY, transaction)
        return found

    @property
    def strategy(self) -> PositionStrategy:
        found = self.document()
        return "transactional" if found is None else found["strategy"]

    def head(self) -> LogHead:
        found = self.document() or _counter(0, "transactional", 0)
        position, strategy = found["seq"], found["strategy"]
        if strategy == "transactional":
            settled_after = min(position, found["unsettled_through"])
        else:  # nothing above a reader's own contiguous prefix is settled
            settled_after = position
        return LogHead(position, strategy, settled_after)

    def reserve(self, count: int, strategy: str, transaction: MemoryTransaction | None) -> int:
        """Take ``count`` positions (in the transaction, or at once); the first of them.
        Only while the counter records ``strategy`` (:class:`StrategyChanged` otherwise)."""
        found = self.document(transaction)
        if found is None or found["strategy"] != strategy:
            raise StrategyChanged(strategy)
        self._db.put(self._table, _COUNTER_KEY, {**found, "seq": found["seq"] + count}, transaction)
        return int(found["seq"]) + 1

    async def reserve_now(self, count: int, strategy: str) -> int:
        """Take positions outside any transaction (``preallocated``): a plain write, which
        waits for a transaction that holds the counter (a migration's)."""
        await self._db.until_free(self._table, _COUNTER_KEY)
        return self.reserve(count, strategy, None)

    async def change(self, new: PositionStrategy) -> bool:
        """Record ``new`` as the strategy; whether it changed. Moving to ``transactional``
        remembers the counter as ``unsettled_through`` (positions taken the old way may still
        fill). A plain write: it waits for the appends that hold the counter."""
        await self._db.until_free(self._table, _COUNTER_KEY)
        found = self.document() or _counter(0, "transactional", 0)
        if found["strategy"] == new:
            return False
        changed = {**found, "strategy": new}
        if new == "transactional":
            changed["unsettled_through"] = max(found["unsettled_through"], found["seq"])
        self._db.put(self._table, _COUNTER_KEY, changed)
        return True


def _counter(seq: int, strategy: str, unsettled_through: int) -> dict[str, Any]:
    return {"seq": seq, "strategy": strategy, "unsettled_through": unsettled_through}


def event_of(document: dict[str, Any]) -> StoredEvent:
    """The :class:`StoredEvent` of a stored document, sharing nothing with the store."""
    return from_document(copy.deepcopy(document))


class MemoryLog(ReadsLogRanges):
    """The :class:`~eventlab.ports.EventLog` of a :class:`~eventlab.memory.MemoryEventStore`."""

    def __init__(self, database: MemoryDatabase, name: str) -> None:
        self._db = database
        self.tables = StoreTables(name)
        self.counter = MemoryCounter(database, self.tables)
        self._waiters: set[MemoryWakeups] = set()
        self.archive_reader = ArchiveReader(
            MemoryArchiveMarkers(database, name), self.tombstone_positions
        )
        """Reads through the store's archive (docs/archive.md)."""
        self.rewrites = RewriteGeneration()
        """Moved on by a scavenge that replaces events (``MongoLog.rewritten``'s)."""

    async def rewritten(self) -> str:
        """The store's rewrite generation: it changes when a scavenge replaces events."""
        return self.rewrites.token()

    def notify(self) -> None:
        for waiter in list(self._waiters):
            waiter.wake()

    async def head(self) -> LogHead:
        return self.counter.head()

    async def _read_range(self, query: LogQuery) -> LogSlice:
        return await self.archive_reader.log_range(query, self._read_live)

    async def _read_live(self, query: LogQuery) -> LogSlice:
        documents = self._db.view(self.tables.events)
        looked: list[int] = []
        abandoned: list[int] = []
        chosen = []
        for position in self._db.keys_between(self.tables.events, query.after, query.until):
            doc = documents[position]
            gap = bool(doc.get(TOMBSTONE_FIELD))
            wanted = not gap and query.wants(doc["event_type"], doc["aggregate_type"])
            if query.filtered and not query.every_position and not wanted:
                continue  # a filtered read looks at the selected events only
            looked.append(position)
            if gap:
                abandoned.append(position)
            elif wanted:
                chosen.append(event_of(doc))
            if query.limit is not None and len(looked) >= query.limit:
                through = position
                break
        else:
            through = query.until
        every = frozenset(looked) if query.every_position else None
        return LogSlice(chosen, through, every, tuple(abandoned))

    async def tombstone_positions(self, after: int, through: int) -> frozenset[int]:
        """The positions ``after < p <= through`` that hold a tombstone."""
        documents = self._db.view(self.tables.events)
        return frozenset(
            p
            for p in self._db.keys_between(self.tables.events, after, through)
            if documents[p].get(TOMBSTONE_FIELD)
        )

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        positions = [check_positive(p, "a position") for p in positions]
        if not positions:
            return Abandonment()
        if self._tombstones(positions):
            return Abandonment(abandoned=tuple(positions))
        found: dict[str, list[int]] = {"abandoned": [], "filled": [], "in_flight": []}
        for position in positions:  # one at a time: each is decided on its own
            found[self._tombstone_one(position)].append(position)
        return Abandonment(
            tuple(found["abandoned"]), tuple(found["filled"]), tuple(found["in_flight"])
        )

    def _tombstones(self, positions: list[int]) -> bool:
        """All of them in one transaction; ``False`` when any one is taken or held."""
        transaction = self._db.begin()
        try:
            for position in positions:
                self._db.insert(self.tables.events, position, tombstone(position), transaction)
            self._db.commit(transaction)
        except (DuplicateKey, WriteConflictError, TransactionAbortedError):
            self._db.abort(transaction)
            return False
        self.notify()
        return True

    def _tombstone_one(self, position: int) -> Literal["abandoned", "filled", "in_flight"]:
        # In a transaction, as on MongoDB: an append that holds the position (it inserted
        # there and has not committed) makes it fail at once instead of waiting.
        transaction = self._db.begin()
        try:
            self._db.insert(self.tables.events, position, tombstone(position), transaction)
            self._db.commit(transaction)
        except WriteConflictError:
            self._db.abort(transaction)
            return "in_flight"
        except DuplicateKey:
            self._db.abort(transaction)
            there = self._db.peek(self.tables.events, position)
            return "abandoned" if is_tombstone(there) else "filled"
        self.notify()
        return "abandoned"

    def is_tombstone(self, position: int | None) -> bool:
        return position is not None and is_tombstone(self._db.peek(self.tables.events, position))

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

    async def __aexit__(self, *exc_info: object) -> None:
        self._log._waiters.discard(self)
        self.watching = False
        self._woken.set()

    async def wait(self, timeout: float) -> None:
        await woken(self._woken, timeout)
        self._woken.clear()

    def wake(self) -> None:
        self._woken.set()
