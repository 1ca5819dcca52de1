"""The decision logic of Dynamic Consistency Boundaries, written once for every backend and for
both APIs: how a decision's read is made of bounded parts, and the order of a conditional
append's steps. The storage behind it (:class:`DCBStorage`) is MongoDB's (async),
the in-memory backend's, or the ``eventsourcing`` recorder's (sync).

This module is the source of truth: ``_dcb_decisions_sync.py`` is generated from it by
``tools/synchro.py`` (as the transaction runner is), and a test checks that the generated file is
up to date.

Why a condition cannot be slipped past (docs/dcb.md):

* **A read takes the head first and bounds every part by it.** With ``transactional``
  positions every position at or below a committed counter is committed, so each of the
  read's queries sees exactly the events at or below the head, whatever is appended between
  them: an event appended meanwhile lands above the head, where the condition looks.
* **An append takes the counter first, then checks, then inserts, in one transaction.** Two
  appends in flight both write the counter: one commits, the other meets a write conflict and
  runs again, its new snapshot holding what the first stored. A check can miss no append that
  commits before it (no write skew).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from .._core.race_points import DCB_APPEND_BEFORE_CHECK as BEFORE_CHECK
from .._core.race_points import DCB_READ_BETWEEN_ITEMS as BETWEEN_ITEMS
from .._core.race_points import DCB_READ_HEAD_TAKEN as HEAD_TAKEN
from .records import (
    Appended,
    AppendOutcome,
    Duplicate,
    Found,
    ItemParts,
    Refused,
    merged,
    placed,
    reads_of,
)

T = TypeVar("T")


class DCBStorage(Protocol):
    """What the decision logic needs of a store: its head, bounded reads by query item, and one
    transaction that takes positions, finds a clash and inserts."""

    async def head(self) -> int:
        """The highest position handed out; every position at or below it is committed."""
        ...

    async def matching(
        self, item: ItemParts | None, after: int, through: int, limit: int | None
    ) -> list[dict[str, Any]]:
        """The event documents matching ``item`` (every event: ``None``) with ``after <
        position <= through``, in position order, at most ``limit`` (tombstones never)."""
        ...

    async def transaction(self, attempt: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``attempt(transaction)`` in one transaction by the store's policy (transient
        failures rerun it); an attempt that aborts the transaction itself is not committed."""
        ...

    async def take_positions(self, count: int, transaction: Any) -> int:
        """Take ``count`` positions from the counter in the transaction; the first of them."""
        ...

    async def first_match(
        self, reads: Sequence[ItemParts | None], after: int, first: int, transaction: Any
    ) -> dict[str, Any] | None:
        """In the transaction: a stored event matching any of ``reads`` after ``after`` (the
        transaction holds positions from ``first`` on), or ``None``."""
        ...

    async def insert(self, documents: list[dict[str, Any]], transaction: Any) -> bool:
        """Insert in the transaction; ``False`` on a duplicate key (the transaction is lost)."""
        ...

    async def abort(self, transaction: Any) -> None:
        """End the transaction without committing it."""
        ...


async def read_decision(
    storage: DCBStorage, items: Sequence[ItemParts], after: int, limit: int | None
) -> Found:
    """The events matching ``items`` after ``after``, every part of the read bounded by the head
    taken before any of them; cut at ``limit``, the read reaches through its last event."""
    head = await storage.head()
    if HEAD_TAKEN.armed:
        await HEAD_TAKEN.reach()
    pages = []
    if after < head:
        for index, item in enumerate(reads_of(items)):
            if index and BETWEEN_ITEMS.armed:
                await BETWEEN_ITEMS.reach()
            pages.append(await storage.matching(item, after, head, limit))
    documents = merged(pages, limit)
    if limit is not None and len(documents) == limit:
        return Found(documents, head, int(documents[-1]["position"]))
    return Found(documents, head, head)


async def append_decision(
    storage: DCBStorage,
    bodies: list[dict[str, Any]],
    condition: tuple[Sequence[ItemParts], int] | None,
) -> AppendOutcome:
    """Take positions, check ``condition`` ((items, after): nothing matching the items after
    ``after``), insert: one transaction. What happened, as a value."""

    async def attempt(transaction: Any) -> AppendOutcome:
        # The counter first: it is what serialises appends (see the module's docstring).
        first = await storage.take_positions(len(bodies), transaction)
        if BEFORE_CHECK.armed:
            await BEFORE_CHECK.reach()
        if condition is not None:
            items, after = condition
            clash = await storage.first_match(reads_of(items), after, first, transaction)
            if clash is not None:
                await storage.abort(transaction)
                return Refused(clash)
        documents = placed(bodies, first)
        if not await storage.insert(documents, transaction):
            await storage.abort(transaction)
            return Duplicate()
        return Appended(documents)

    return await storage.transaction(attempt)
