"""Load and save event-sourced aggregates through an event store."""

from __future__ import annotations

from typing import Any, TypeVar

from ._domain import AggregateRoot
from ._errors import AggregateNotFoundError
from ._event_store import MongoEventStore
from ._records import StoredEvent
from ._session import SessionProvider

A = TypeVar("A", bound=AggregateRoot)


class AggregateStore:
    """Rebuilds aggregates from their streams and saves their pending events.

    The expected version of a save is the version the aggregate was loaded at, so two
    processes that loaded the same version cannot both save: the second gets
    :class:`~eventlab.ConcurrencyError` and must reload and retry its command.
    """

    def __init__(self, events: MongoEventStore) -> None:
        self.events = events

    async def load(
        self, aggregate_class: type[A], aggregate_id: str, *, uow: SessionProvider | None = None
    ) -> A:
        """The aggregate with every stored event applied (raises if the stream is empty)."""
        events = await self.events.load_events(str(aggregate_id), unknown="raise", uow=uow)
        if not events:
            raise AggregateNotFoundError(str(aggregate_id))
        return aggregate_class.rebuild(str(aggregate_id), events)  # type: ignore[arg-type]

    async def save(
        self,
        aggregate: AggregateRoot,
        *,
        metadata: dict[str, Any] | None = None,
        uow: SessionProvider | None = None,
    ) -> list[StoredEvent]:
        """Append the aggregate's pending events; they are cleared only once stored."""
        pending = list(aggregate.pending_events)
        if not pending:
            return []
        stored = await self.events.save_events(
            aggregate.id,
            pending,
            expected_version=aggregate.version - len(pending),
            aggregate_type=type(aggregate).aggregate_type,
            metadata=metadata,
            uow=uow,
        )
        aggregate.pull_domain_events()
        return stored
