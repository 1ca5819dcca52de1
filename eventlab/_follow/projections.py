"""Projections: the pure part of a read model.

A :class:`Projection` is handlers per event type that read and write **rows** (plain dicts by
key) through the :class:`~eventlab.ports.Rows` port. The same handlers therefore run in a
:class:`~eventlab.Projector` on any backend (in the transaction that also moves the
checkpoint) and in memory (the workbench's ``replay_projection`` and ``diff_projections``), so
what a notebook shows is what the service will write.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .._core.bson_values import check_collection_name
from .._core.domain import DomainEvent
from .._core.errors import ConfigurationError
from .._core.records import StoredEvent
from ..ports import Rows

_EventHandler = Callable[[Any, Rows, StoredEvent], Awaitable[None]]


def on(*event_types: str | type[DomainEvent]) -> Callable[[_EventHandler], _EventHandler]:
    """Mark a :class:`Projection` method as the handler of these event types."""
    names = tuple(t if isinstance(t, str) else t.event_type for t in event_types)

    def mark(func: _EventHandler) -> _EventHandler:
        func.__eventlab_on__ = names  # type: ignore[attr-defined]
        return func

    return mark


class Projection:
    """A read model's logic: ``@on("EventType")`` methods ``async def f(self, rows, event)``.

    ``name`` (default: the class name in snake case) names the read model and its checkpoint;
    bump ``version`` when the handlers change what they write, then :meth:`Projector.rebuild`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    _handlers: ClassVar[dict[str, _EventHandler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()
        check_collection_name(cls.name)
        handlers = dict(cls._handlers)
        for attr in cls.__dict__.values():
            for event_type in getattr(attr, "__eventlab_on__", ()):
                handlers[event_type] = attr
        cls._handlers = handlers

    @classmethod
    def event_types(cls) -> list[str]:
        """The event types it handles (the subscription reads only those)."""
        return sorted(cls._handlers)

    async def apply(self, rows: Rows, event: StoredEvent) -> bool:
        """Apply one event; whether the projection handles its type."""
        handler = self._handlers.get(event.event_type)
        if handler is None:
            return False
        await handler(self, rows, event)
        return True


class MemoryRows:
    """:class:`Rows` in a dict (the workbench, tests)."""

    def __init__(self, rows: dict[str, dict[str, Any]] | None = None) -> None:
        self.rows: dict[str, dict[str, Any]] = rows if rows is not None else {}

    async def get(self, key: str) -> dict[str, Any] | None:
        row = self.rows.get(key)
        return copy.deepcopy(row) if row is not None else None

    def put(self, key: str, row: dict[str, Any]) -> None:
        self.rows[str(key)] = copy.deepcopy(row)

    def delete(self, key: str) -> None:
        self.rows.pop(str(key), None)


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """Where a projection stands."""

    name: str
    version: int
    """The version of the handlers that built the live read model."""
    code_version: int
    """The version of the handlers in this process (differs: rebuild)."""
    generation: int
    collection: str
    position: int
    head: int
    behind: int
    """Positions between the read model's checkpoint and the head of the log."""
    seconds_behind: float
    """How long ago the oldest event not yet in the read model was recorded (0: caught up)."""
    rows: int

    @property
    def stale(self) -> bool:
        """The live read model was built by other handlers than this process's."""
        return self.version != self.code_version


def check_projection(projection: Any) -> Projection:
    if not isinstance(projection, Projection):
        raise ConfigurationError(f"expected a Projection instance, got {projection!r:.60}")
    return projection
