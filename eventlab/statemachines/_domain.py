"""What the state machines write: plain records with ids the machine chooses (so that every
lane stores the same events and a retry can resend them), a small aggregate with snapshots, and
a projection over both."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from .._core.domain import AggregateRoot, DomainEvent, applies
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from .._follow.projections import Projection, on
from ..ports import Rows

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
NOTED = "Noted"


class Tallied(DomainEvent):
    """A tally grew by ``by``."""

    aggregate_type = "Tally"
    by: int


class Tally(AggregateRoot):
    """A running total, snapshotted every third version."""

    snapshot_every: ClassVar[int | None] = 3

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.total = 0
        self.steps = 0

    @applies(Tallied)
    def _tallied(self, event: Tallied) -> None:
        self.total += event.by
        self.steps += 1


def machine_registry() -> EventRegistry:
    """The registry every lane's store is made with."""
    registry = EventRegistry()
    registry.register_all(Tallied)
    return registry


class Ids:
    """Event ids in the order a machine asks for them: the same in every lane and every run of
    an example, so that shrunk steps replay exactly."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> uuid.UUID:
        self._next += 1
        return uuid.UUID(int=self._next)


def noted(event_id: uuid.UUID, stream: str, n: int) -> StoredEvent:
    """A stream event (its version is set by the append's expectation)."""
    return StoredEvent(
        event_id=event_id,
        event_type=NOTED,
        aggregate_id=stream,
        aggregate_type="Note",
        version=1,
        payload={"n": n},
        occurred_at=WHEN,
    )


def other_content(event: StoredEvent) -> StoredEvent:
    """The same id saying something else (not an idempotent retry: docs/design.md)."""
    return replace(event, payload={**event.payload, "other": True})


class Counts(Projection):
    """Events per stream and the last version seen: a read model with one row per stream."""

    name = "machine_counts"

    @on(NOTED, "Tallied")
    async def counted(self, rows: Rows, event: StoredEvent) -> None:
        row = await rows.get(event.aggregate_id) or {"n": 0}
        row["n"] += 1
        row["last"] = event.version
        rows.put(event.aggregate_id, row)


def counts_for(tag: str) -> Projection:
    """A :class:`Counts` projection named for one lane (lanes may share a database)."""
    named: type[Projection] = type(f"Counts_{tag}", (Counts,), {"name": f"counts_{tag}"})
    return named()


def expected_counts(events: list[StoredEvent]) -> dict[str, dict[str, Any]]:
    """What one clean pass of :class:`Counts` over ``events`` makes."""
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.event_type in (NOTED, "Tallied"):
            row = rows.setdefault(event.aggregate_id, {"n": 0})
            row["n"] += 1
            row["last"] = event.version
    return rows
