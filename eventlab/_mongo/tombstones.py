"""Giving up on holes of the log for good: a tombstone at each position.

A tombstone is a document in the events collection that the unique ``position`` index sets
against any event at that position. An append that still holds the position (an open
transaction that inserted there) makes the tombstone's transaction fail with a write conflict;
one that has committed makes it fail with a duplicate key; one that has not inserted yet loses,
and its insert fails with a duplicate key and stores nothing (docs/positions.md, "Holes").
Exactly one of the two ever commits, whatever the clocks say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pymongo.errors import ConnectionFailure, PyMongoError

from .._core.checks import check_positive
from .._core.tombstones import TOMBSTONE_FIELD, is_tombstone, tombstone
from ..ports import Abandonment
from . import liveness as liveness
from .schema import EventStoreSchema
from .transaction_policy import TRANSIENT, has_label, is_duplicate_key, map_error
from .transactions import start_transaction

NOT_A_TOMBSTONE: dict[str, Any] = {TOMBSTONE_FIELD: {"$exists": False}}
"""A filter that leaves tombstones out (for counts and scans)."""

Outcome = Literal["abandoned", "filled", "in_flight"]


class MongoTombstones:
    """Writes the tombstones of a store's log (:meth:`~eventlab.ports.EventLog.abandon`)."""

    def __init__(self, schema: EventStoreSchema) -> None:
        self._schema = schema

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        positions = [check_positive(p, "a position") for p in positions]
        if not positions:
            return Abandonment()
        await self._schema.ready()
        try:
            if await self._all_at_once(positions):
                return Abandonment(abandoned=tuple(positions))
            found: dict[Outcome, list[int]] = {"abandoned": [], "filled": [], "in_flight": []}
            for position in positions:  # one at a time: each is decided on its own
                found[await self._one(position)].append(position)
        except ConnectionFailure as exc:
            raise self._schema.connection.unreachable(exc) from exc
        except PyMongoError as exc:
            raise map_error(exc) from exc
        if found["in_flight"]:
            # Held past gap_timeout by an open transaction: if its process is dead (its lease
            # expired), have it ended now rather than when the server expires it.
            liveness.blocked(self._schema.connection.client)
        return Abandonment(
            tuple(found["abandoned"]), tuple(found["filled"]), tuple(found["in_flight"])
        )

    async def _all_at_once(self, positions: list[int]) -> bool:
        """All of them in one transaction; ``False`` when any one is taken or held."""
        documents = [tombstone(p) for p in positions]
        if not self._schema.connection.supports_transactions:
            return False
        async with self._schema.connection.client.start_session() as session:
            # A transaction, not a plain insert: a plain insert that meets an open
            # transaction's insert at the same position waits for it to end; in a
            # transaction the server answers at once with a write conflict.
            await start_transaction(session)
            try:
                await self._schema.events.insert_many(documents, ordered=True, session=session)
                await session.commit_transaction()
            except PyMongoError as exc:
                if session.in_transaction:
                    await session.abort_transaction()
                if has_label(exc, TRANSIENT) or is_duplicate_key(exc):
                    return False
                raise
        return True

    async def _one(self, position: int) -> Outcome:
        events = self._schema.events
        try:
            if self._schema.connection.supports_transactions:
                async with self._schema.connection.client.start_session() as session:
                    await start_transaction(session)
                    try:
                        await events.insert_one(tombstone(position), session=session)
                        await session.commit_transaction()
                    finally:
                        if session.in_transaction:
                            await session.abort_transaction()
            else:  # a standalone server: appends do not hold positions in transactions
                await events.insert_one(tombstone(position))
        except PyMongoError as exc:
            if has_label(exc, TRANSIENT):
                return "in_flight"
            if not is_duplicate_key(exc):
                raise
            there = await events.find_one({"position": position}, {TOMBSTONE_FIELD: 1})
            return "abandoned" if is_tombstone(there) else "filled"
        return "abandoned"
