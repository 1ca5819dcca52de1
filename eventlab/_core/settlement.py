"""What an append's attempt means, decided by what is committed: one rule for every backend.

An attempt reports what happened as a value (:class:`Appended`, :class:`VersionMismatch`,
:class:`KeyCollision`). A :class:`Settlement` alone decides what that means for the caller:
the events, an idempotent retry, a typed error, or "go again". Each backend says only how it
reads what is committed (the batch's stored copies, a stream's version, whether a position
holds a tombstone), so the same interleavings give the same outcomes on all of them.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .appends import Expected, StreamAppend, conflict, idempotent_result
from .errors import (
    DuplicateEventError,
    EventlabError,
    PositionsAbandonedError,
    TransactionTimeoutError,
)
from .records import ExpectedVersion, StoredEvent
from .retry import backoff_delay


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
    deleted: bool = False
    """The stream's last event is a permanent deletion marker (the error says so)."""


@dataclass(frozen=True, slots=True)
class KeyCollision:
    """The insert hit a unique index (``_id``, ``stream_version`` or ``position``)."""

    index: str
    aggregate_id: str | None
    position: int | None = None


Outcome = Appended | VersionMismatch | KeyCollision


class Settlement(ABC):
    """Settles attempts by what is committed; a backend fills in how it reads that."""

    @abstractmethod
    async def stored_copies(self, batch: list[StreamAppend]) -> list[dict[str, Any]]:
        """The committed documents whose ids are among the batch's event ids."""

    @abstractmethod
    async def stream_head(self, aggregate_id: str) -> tuple[int, bool]:
        """A stream's committed version, and whether its last event is a permanent deletion
        marker."""

    @abstractmethod
    async def abandoned(self, position: int | None) -> bool:
        """Whether a follower has given ``position`` up for good (a tombstone is there)."""

    @abstractmethod
    def counter_behind(self, collision: KeyCollision) -> EventlabError:
        """The error for a collision nothing explains: the counter is behind the events."""

    async def settle(self, outcome: Outcome, batch: list[StreamAppend]) -> list[StoredEvent] | None:
        """What an attempt in its own transaction means: the events, or ``None`` to go again;
        raises the typed error otherwise."""
        if isinstance(outcome, Appended):
            return outcome.events
        existing = await self.stored_copies(batch)
        if existing:  # this very batch is already stored: an idempotent retry
            return idempotent_result(batch, existing)
        if isinstance(outcome, VersionMismatch):
            raise conflict(outcome.aggregate_id, outcome.expected, outcome.actual, outcome.deleted)
        if outcome.index == "stream_version":
            stream = _stream_of(batch, outcome.aggregate_id)
            if stream.expected is ExpectedVersion.ANY:
                return None
            actual, deleted = await self.stream_head(stream.aggregate_id)
            raise conflict(stream.aggregate_id, stream.expected, actual, deleted)
        if outcome.index == "position" and await self.abandoned(outcome.position):
            return None
        raise self.counter_behind(outcome)

    async def until_settled(
        self,
        attempt: Callable[[], Awaitable[Outcome]],
        batch: list[StreamAppend],
        time_budget: float,
    ) -> list[StoredEvent]:
        """An append in its own transaction: ``attempt()`` run again while :meth:`settle` says
        so, within ``time_budget`` seconds, with backoff."""
        deadline = time.monotonic() + time_budget
        attempts = 0
        while True:
            settled = await self.settle(await attempt(), batch)
            if settled is not None:
                return settled
            # An ANY append lost a race, or a follower abandoned this append's preallocated
            # positions before it inserted: go again (with fresh positions), after the winner.
            attempts += 1
            if time.monotonic() >= deadline:
                raise TransactionTimeoutError(
                    f"an append kept having to go again (ExpectedVersion.ANY losing races, or "
                    f"its positions abandoned by followers) for {time_budget:g}s"
                )
            await asyncio.sleep(backoff_delay(attempts))

    async def settle_in_unit_of_work(
        self, outcome: Outcome, batch: list[StreamAppend]
    ) -> list[StoredEvent]:
        """What an attempt in a caller's transaction means: the events, or the typed error.

        A failed insert has doomed the caller's transaction: nothing of it will commit, so
        this is never reported as success, whatever is stored outside it."""
        if isinstance(outcome, Appended):
            return outcome.events
        if isinstance(outcome, VersionMismatch):
            raise conflict(outcome.aggregate_id, outcome.expected, outcome.actual, outcome.deleted)
        if outcome.index == "stream_version":
            stream = _stream_of(batch, outcome.aggregate_id)
            actual, deleted = await self.stream_head(stream.aggregate_id)
            raise conflict(stream.aggregate_id, stream.expected, actual, deleted)
        if outcome.index == "_id":
            raise DuplicateEventError([body["_id"] for s in batch for body in s.bodies])
        if outcome.index == "position" and await self.abandoned(outcome.position):
            raise PositionsAbandonedError(
                f"position {outcome.position} was recorded as a permanent gap by a follower "
                "before this unit of work's append reached it (the append took longer than "
                "the followers' gap_timeout between reserving and inserting); nothing of the "
                "unit of work is stored: run it again"
            )
        raise self.counter_behind(outcome)


def _stream_of(batch: list[StreamAppend], aggregate_id: str | None) -> StreamAppend:
    return next((s for s in batch if s.aggregate_id == aggregate_id), batch[0])
