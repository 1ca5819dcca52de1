"""Domain primitives: typed events and event-sourced aggregates.

``DomainEvent`` is a frozen pydantic v2 model. Pydantic, not a dataclass, because events are
built from untrusted command input and must be validated there once (types, enums, decimals,
aware datetimes), and because loading an old event has to coerce stored BSON values (strings to
enums, ints to Decimals) back into the declared field types; pydantic's compiled validator does
both faster than hand-written code, and gives JSON schemas for free.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# pydantic's metaclass, public in practice (stable since 2.0) but not re-exported at the top.
from pydantic._internal._model_construction import ModelMetaclass

from .errors import InvalidEventError
from .records import event_id_from

ENVELOPE_FIELDS = frozenset({"event_id", "occurred_at", "metadata"})
"""Fields of every :class:`DomainEvent` that live in the envelope, not in the payload."""

# What ``model_dump(exclude=...)`` takes: a plain set (private, never mutated).
PAYLOAD_EXCLUDE: set[str] = set(ENVELOPE_FIELDS)


def utc_now() -> datetime:
    """Now, aware UTC, at millisecond precision (what BSON stores, so it round-trips exactly)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


if TYPE_CHECKING:
    # Type checkers see pydantic's own metaclass, so constructors keep their checked fields.
    _DomainEventMeta = ModelMetaclass
else:

    class _DomainEventMeta(ModelMetaclass):
        """Turns pydantic's ValidationError into InvalidEventError where events are constructed.

        Every error eventlab raises is an EventlabError, so a command handler catches one type.
        A metaclass ``__call__``, not an ``__init__`` override: pydantic runs a custom
        ``__init__`` for every ``model_validate`` too, which would validate each loaded event
        twice (measured: typed loads of 1,000 events 1.2x slower).
        """

        def __call__(cls, *args, **kwargs):
            try:
                return super().__call__(*args, **kwargs)
            except ValidationError as exc:
                raise InvalidEventError(str(exc)) from exc


class DomainEvent(BaseModel, metaclass=_DomainEventMeta):
    """Base class of typed domain events.

    Subclasses declare payload fields. Class variables name the event (``event_type``, defaults to
    the class name), its payload schema version (``schema_version``, bump it when the payload
    changes shape and register an upcaster), optionally the ``aggregate_type`` it belongs to,
    and, for an event with ``Personal`` fields, the field naming their subject
    (``personal_subject``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    aggregate_type: ClassVar[str | None] = None
    personal_subject: ClassVar[str | None] = None
    """The name of the ``str`` field holding the subject id of the event's ``Personal``
    fields (docs/forgetting.md)."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=utc_now)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("event_id", mode="before")
    @classmethod
    def _event_id(cls, value: Any) -> uuid.UUID:
        # The same rule as StoredEvent's (a UUID or its canonical string), not pydantic's
        # laxer one (bare hex, braces, URNs, bytes), so an id means the same thing everywhere.
        return event_id_from(value)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__

    def payload(self) -> dict[str, Any]:
        """The event's own fields (the envelope excluded), as Python values."""
        return self.model_dump(exclude=PAYLOAD_EXCLUDE)


E = TypeVar("E", bound=DomainEvent)
_Handler = Callable[[Any, Any], None]


def applies(*event_classes: type[DomainEvent]) -> Callable[[_Handler], _Handler]:
    """Mark an :class:`AggregateRoot` method as the handler that applies these events."""

    def mark(func: _Handler) -> _Handler:
        func.__eventlab_applies__ = event_classes  # type: ignore[attr-defined]
        return func

    return mark


class AggregateRoot:
    """An event-sourced aggregate: state changes only by applying events.

    Commands call :meth:`record` with a new event; rebuilding calls :meth:`apply` for each stored
    event. Handlers are methods marked with :func:`applies`::

        class Order(AggregateRoot):
            def __init__(self, id: str) -> None:
                super().__init__(id)
                self.status = "new"

            @applies(OrderShipped)
            def _shipped(self, event: OrderShipped) -> None:
                self.status = "shipped"

    ``version`` counts the events applied (stored and pending); the store uses
    ``version - len(pending)`` as the expected version when saving.
    """

    aggregate_type: ClassVar[str] = ""
    snapshot_every: ClassVar[int | None] = None
    """Take a snapshot each time a save crosses a multiple of this many versions (opt-in)."""
    snapshot_schema_version: ClassVar[int] = 1
    """Bump it when the attributes change shape: older snapshots are then ignored, not trusted."""
    _handlers: ClassVar[dict[type[DomainEvent], _Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "aggregate_type" not in cls.__dict__:
            cls.aggregate_type = cls.__name__
        handlers = dict(cls._handlers)
        for attr in cls.__dict__.values():
            for event_class in getattr(attr, "__eventlab_applies__", ()):
                handlers[event_class] = attr
        cls._handlers = handlers

    def __init__(self, id: str) -> None:
        self.id = str(id)
        self.version = 0
        self._pending: list[DomainEvent] = []

    @classmethod
    def rebuild(cls, id: str, events: Iterable[DomainEvent]) -> Self:
        """A new instance with ``events`` applied in order (nothing pending)."""
        aggregate = cls(id)
        for event in events:
            aggregate.apply(event)
        return aggregate

    def apply(self, event: DomainEvent) -> None:
        """Apply a stored event: change state and advance ``version`` by one."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise InvalidEventError(
                f"{type(self).__name__} has no handler for {type(event).__name__}; "
                f"mark a method with @applies({type(event).__name__})"
            )
        handler(self, event)
        self.version += 1

    def record(self, event: DomainEvent) -> None:
        """Apply a new event and keep it pending until the aggregate is saved."""
        self.apply(event)
        self._pending.append(event)

    @property
    def pending_events(self) -> tuple[DomainEvent, ...]:
        """Events recorded since the last save (not removed)."""
        return tuple(self._pending)

    def pull_domain_events(self) -> list[DomainEvent]:
        """Return and forget the pending events."""
        events, self._pending = self._pending, []
        return events

    def _mark_saved(self, count: int) -> None:
        """Forget the first ``count`` pending events: their transaction has committed (events
        recorded since then stay pending)."""
        del self._pending[:count]

    def state(self) -> dict[str, Any]:
        """The public attributes (for display, diffs and tests)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def snapshot_state(self) -> dict[str, Any]:
        """What a snapshot stores: the public attributes but ``id`` and ``version``.

        Override it (with :meth:`from_snapshot`) when the state holds values BSON does not keep
        exactly (sets, tuples, enums, models): a snapshot must restore what replay builds.
        """
        return {k: v for k, v in self.state().items() if k not in ("id", "version")}

    @classmethod
    def from_snapshot(cls, id: str, version: int, state: dict[str, Any]) -> Self:
        """The aggregate as :meth:`snapshot_state` described it at ``version``."""
        aggregate = cls(id)
        for name, value in state.items():
            setattr(aggregate, name, value)
        aggregate.version = version
        return aggregate

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r} version={self.version}>"
