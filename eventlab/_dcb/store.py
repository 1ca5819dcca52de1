"""Dynamic Consistency Boundaries over any backend (the :class:`~eventlab.ports.DCBStore` port):
inputs checked, the shared decision logic run over the backend's storage, and what an append's
outcome means for the caller. ``MongoDCBStore`` and ``MemoryDCBStore`` only say which storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .._core.errors import (
    AppendConditionError,
    ConfigurationError,
    DuplicateEventError,
    InvalidSpecificationError,
)
from .._core.event_codec import from_document
from .._core.records import StoredEvent
from .decisions import DCBStorage, append_decision, read_decision
from .records import (
    AppendCondition,
    Appended,
    DecisionRead,
    Query,
    Refused,
    TaggedEvent,
    check_after,
    check_condition,
    check_limit,
    check_query,
    dcb_bodies,
    idempotent_copies,
)


class DecisionStorage(DCBStorage, Protocol):
    """A backend's storage for :class:`DecisionStore`: the decision logic's, and the rest of
    what an append's outcome is judged by."""

    async def prepare(self) -> None:
        """Make the store ready (indexes), or refuse it (:class:`~eventlab.ConfigurationError`
        for ``preallocated`` positions)."""
        ...

    def check(self, bodies: Sequence[dict[str, Any]]) -> None:
        """Refuse, before any write, what the backend cannot store (a typed error)."""
        ...

    async def stored(self, event_ids: Sequence[Any]) -> list[dict[str, Any]]:
        """The stored documents among these event ids."""
        ...

    def failure(self, bodies: Sequence[dict[str, Any]], error: Exception) -> Exception:
        """The typed error to raise for ``error``, raised by an append of ``bodies`` (the
        error itself when it is eventlab's already)."""
        ...


class DecisionStore:
    """Read a query with a head, append on a condition; the backend is its storage."""

    def __init__(self, storage: DecisionStorage) -> None:
        self._storage = storage

    async def read(
        self, query: Query | None = None, *, after: int = 0, limit: int | None = None
    ) -> DecisionRead:
        """The events matching ``query`` with ``after < position <= head``, in position order
        (at most ``limit``), and ``head``, the position to append after: every part of the
        read is bounded by it, so every matching event at or below it is among ``events``
        (with a full ``limit``, ``head`` is the last event read)."""
        query = check_query(query)
        after = check_after(after, InvalidSpecificationError)
        limit = check_limit(limit)
        await self._storage.prepare()
        found = await read_decision(self._storage, query.parts, after, limit)
        return DecisionRead(query, [from_document(doc) for doc in found.documents], found.through)

    async def append(
        self, events: Sequence[TaggedEvent], condition: AppendCondition | None = None
    ) -> list[StoredEvent]:
        """Store ``events`` atomically at the next positions, unless ``condition`` fails:
        then :class:`~eventlab.AppendConditionError` and nothing is written.

        Idempotent by event ids: the same events sent again (a retry after an unknown commit
        outcome) are returned as stored, not appended twice; an id stored with other content
        is a :class:`~eventlab.DuplicateEventError`.
        """
        bodies = dcb_bodies(events)
        condition = check_condition(condition)
        self._storage.check(bodies)
        await self._storage.prepare()
        parts = None
        if condition is not None:
            parts = (condition.fail_if_events_match.parts, condition.after)
        try:
            outcome = await append_decision(self._storage, bodies, parts)
        except Exception as exc:
            typed = self._storage.failure(bodies, exc)
            if typed is exc:
                raise
            raise typed from exc
        if isinstance(outcome, Appended):
            return [from_document(doc) for doc in outcome.documents]
        ids = [body["_id"] for body in bodies]
        retried = idempotent_copies(bodies, await self._storage.stored(ids))
        if retried is not None:
            return retried  # this very append committed before: an idempotent retry
        if isinstance(outcome, Refused):
            raise AppendConditionError(condition, from_document(outcome.document))
        raise DuplicateEventError(ids)


def wrong_strategy(found: str) -> ConfigurationError:
    return ConfigurationError(
        f"Dynamic Consistency Boundaries need the 'transactional' position strategy; this "
        f"store has {found!r}. With preallocated positions two appends do not write one "
        "document, so both could pass their conditions (docs/dcb.md); migrate the store with "
        "change_position_strategy('transactional')"
    )
