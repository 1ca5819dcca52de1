"""Generated from ``_dcb/decisions.py`` by ``tools/synchro.py``: do not edit.

The synchronous twin of the decision logic of Dynamic Consistency Boundaries (see that
module), for the ``eventsourcing`` module's DCB recorder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def head(self) -> int:
        """The highest position handed out; every position at or below it is committed."""
        ...

    def matching(
        self, item: ItemParts | None, after: int, through: int, limit: int | None
    ) -> list[dict[str, Any]]:
        """The event documents matching ``item`` (every event: ``None``) with ``after <
        position <= through``, in position order, at most ``limit`` (tombstones never)."""
        ...

    def transaction(self, attempt: Callable[[Any], T]) -> T:
        """Run ``attempt(transaction)`` in one transaction by the store's policy (transient
        failures rerun it); an attempt that aborts the transaction itself is not committed."""
        ...

    def take_positions(self, count: int, transaction: Any) -> int:
        """Take ``count`` positions from the counter in the transaction; the first of them."""
        ...

    def first_match(
        self, reads: Sequence[ItemParts | None], after: int, first: int, transaction: Any
    ) -> dict[str, Any] | None:
        """In the transaction: a stored event matching any of ``reads`` after ``after`` (the
        transaction holds positions from ``first`` on), or ``None``."""
        ...

    def insert(self, documents: list[dict[str, Any]], transaction: Any) -> bool:
        """Insert in the transaction; ``False`` on a duplicate key (the transaction is lost)."""
        ...

    def abort(self, transaction: Any) -> None:
        """End the transaction without committing it."""
        ...


def read_decision(
    storage: DCBStorage, items: Sequence[ItemParts], after: int, limit: int | None
) -> Found:
    """The events matching ``items`` after ``after``, every part of the read bounded by the head
    taken before any of them; cut at ``limit``, the read reaches through its last event."""
    head = storage.head()
    if HEAD_TAKEN.armed:
        HEAD_TAKEN.reach_sync()
    pages = []
    if after < head:
        for index, item in enumerate(reads_of(items)):
            if index and BETWEEN_ITEMS.armed:
                BETWEEN_ITEMS.reach_sync()
            pages.append(storage.matching(item, after, head, limit))
    documents = merged(pages, limit)
    if limit is not None and len(documents) == limit:
        return Found(documents, head, int(documents[-1]["position"]))
    return Found(documents, head, head)


def append_decision(
    storage: DCBStorage,
    bodies: list[dict[str, Any]],
    condition: tuple[Sequence[ItemParts], int] | None,
) -> AppendOutcome:
    """Take positions, check ``condition`` ((items, after): nothing matching the items after
    ``after``), insert: one transaction. What happened, as a value."""

    def attempt(transaction: Any) -> AppendOutcome:
        # The counter first: it is what serialises appends (see the module's docstring).
        first = storage.take_positions(len(bodies), transaction)
        if BEFORE_CHECK.armed:
            BEFORE_CHECK.reach_sync()
        if condition is not None:
            items, after = condition
            clash = storage.first_match(reads_of(items), after, first, transaction)
            if clash is not None:
                storage.abort(transaction)
                return Refused(clash)
        documents = placed(bodies, first)
        if not storage.insert(documents, transaction):
            storage.abort(transaction)
            return Duplicate()
        return Appended(documents)

    return storage.transaction(attempt)
