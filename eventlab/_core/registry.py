"""The event registry: stable type names, serialization and upcasting."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, overload

from pydantic import ValidationError

from .bson_values import decimals_to_python
from .domain import PAYLOAD_EXCLUDE, DomainEvent
from .errors import ConfigurationError, InvalidEventError, UnknownEventTypeError, UpcastError
from .event_codec import from_document
from .records import StoredEvent

E = TypeVar("E", bound=type[DomainEvent])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UnknownPolicy = Literal["raise", "raw"]


class EventRegistry:
    """Maps stable event type names to :class:`DomainEvent` classes, and back.

    :param unknown: what :meth:`to_domain` does with a type that has no class: ``"raise"``
        :class:`~eventlab.UnknownEventTypeError`, or ``"raw"`` return the :class:`StoredEvent`
        itself, so exploring a store never breaks on an event written by newer code.
    """

    def __init__(self, *, unknown: UnknownPolicy = "raise") -> None:
        if unknown not in ("raise", "raw"):
            raise ConfigurationError(f"unknown= must be 'raise' or 'raw', got {unknown!r}")
        self.unknown: UnknownPolicy = unknown
        self._classes: dict[str, type[DomainEvent]] = {}
        self._names: dict[type[DomainEvent], str] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    # -- registration ----------------------------------------------------------------------

    @overload
    def register(self, event_class: E, *, name: str | None = None) -> E: ...
    @overload
    def register(
        self, event_class: None = None, *, name: str | None = None
    ) -> Callable[[E], E]: ...

    def register(self, event_class: E | None = None, *, name: str | None = None) -> Any:
        """Register a class under ``name`` (default: its ``event_type``). Usable as decorator."""
        if event_class is None:
            return lambda cls: self.register(cls, name=name)
        if not (isinstance(event_class, type) and issubclass(event_class, DomainEvent)):
            raise ConfigurationError(f"{event_class!r} is not a DomainEvent subclass")
        type_name = name or event_class.event_type or event_class.__name__
        existing = self._classes.get(type_name)
        if existing is not None and existing is not event_class:
            raise ConfigurationError(
                f"event type {type_name!r} is already registered to {existing.__qualname__}"
            )
        self._classes[type_name] = event_class
        self._names[event_class] = type_name
        return event_class

    def register_all(self, *event_classes: type[DomainEvent]) -> None:
        """Register several classes under their ``event_type`` names."""
        for event_class in event_classes:
            self.register(event_class)

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: ``fn(payload) -> payload`` lifting ``event_type`` from ``from_version``
        to ``from_version + 1``. Chains run until the class's ``schema_version``."""

        def add(func: Upcaster) -> Upcaster:
            self.add_upcaster(event_type, from_version, func)
            return func

        return add

    def add_upcaster(self, event_type: str, from_version: int, func: Upcaster) -> None:
        """Register ``func`` as the upcaster of ``event_type`` from ``from_version``."""
        key = (event_type, from_version)
        if key in self._upcasters:
            raise ConfigurationError(f"an upcaster for {event_type} v{from_version} exists")
        self._upcasters[key] = func

    # -- lookup ----------------------------------------------------------------------------

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._classes

    def names(self) -> list[str]:
        """Registered type names, sorted."""
        return sorted(self._classes)

    def class_for(self, event_type: str) -> type[DomainEvent]:
        """The class registered for ``event_type`` (raises :class:`UnknownEventTypeError`)."""
        try:
            return self._classes[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type) from None

    def name_of(self, event: DomainEvent | type[DomainEvent]) -> str:
        """The registered type name of an event or class."""
        cls = event if isinstance(event, type) else type(event)
        try:
            return self._names[cls]
        except KeyError:
            raise UnknownEventTypeError(getattr(cls, "event_type", cls.__name__)) from None

    # -- conversion ------------------------------------------------------------------------

    def to_stored(
        self,
        event: DomainEvent,
        *,
        aggregate_id: str,
        aggregate_type: str,
        version: int,
        metadata: Mapping[str, Any] | None = None,
    ) -> StoredEvent:
        """Envelope a typed event; ``metadata`` is merged over the event's own."""
        type_name = self.name_of(event)
        merged = {**event.metadata, **metadata} if metadata else dict(event.metadata)
        return StoredEvent(
            event_id=event.event_id,
            event_type=type_name,
            aggregate_id=aggregate_id,
            aggregate_type=aggregate_type,
            version=version,
            payload=event.model_dump(exclude=PAYLOAD_EXCLUDE),
            metadata=merged,
            occurred_at=event.occurred_at,
            schema_version=type(event).schema_version,
        )

    @overload
    def to_domain(self, stored: StoredEvent, *, unknown: Literal["raise"]) -> DomainEvent: ...
    @overload
    def to_domain(
        self, stored: StoredEvent, *, unknown: UnknownPolicy | None = None
    ) -> DomainEvent | StoredEvent: ...

    def to_domain(
        self, stored: StoredEvent, *, unknown: UnknownPolicy | None = None
    ) -> DomainEvent | StoredEvent:
        """The typed event for ``stored``, upcast to the class's current schema version."""
        cls = self._classes.get(stored.event_type)
        if cls is None:
            if (unknown or self.unknown) == "raw":
                return stored
            raise UnknownEventTypeError(stored.event_type)
        payload = stored.payload
        if stored.schema_version != cls.schema_version:
            payload = self.upcast(
                stored.event_type, stored.schema_version, cls.schema_version, payload
            )
        return _validate(cls, payload, stored.event_id, stored.occurred_at, stored.metadata)

    def document_to_domain(
        self, doc: dict[str, Any], *, unknown: UnknownPolicy | None = None
    ) -> DomainEvent | StoredEvent:
        """The typed event for a stored document, without an intermediate :class:`StoredEvent`
        when no upcasting is needed (the hot path of loading an aggregate)."""
        cls = self._classes.get(doc["event_type"])
        if cls is None or doc.get("schema_version", 1) != cls.schema_version:
            return self.to_domain(from_document(doc), unknown=unknown)
        return _validate(
            cls,
            decimals_to_python(doc["payload"]),
            doc["_id"],
            doc["occurred_at"],
            decimals_to_python(doc.get("metadata") or {}),
        )

    def upcast(
        self, event_type: str, from_version: int, to_version: int, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Run the upcaster chain ``from_version`` → ``to_version`` over a copy of ``payload``."""
        if from_version > to_version:
            raise UpcastError(
                f"{event_type} v{from_version} is newer than the registered class "
                f"(v{to_version}); upgrade the code that reads it"
            )
        current = dict(payload)
        for version in range(from_version, to_version):
            func = self._upcasters.get((event_type, version))
            if func is None:
                raise UpcastError(
                    f"no upcaster registered for {event_type} v{version} -> v{version + 1}"
                )
            try:
                current = func(current)
            except Exception as exc:
                raise UpcastError(
                    f"upcaster {event_type} v{version} -> v{version + 1} failed: {exc!r}"
                ) from exc
            if not isinstance(current, dict):
                raise UpcastError(
                    f"upcaster {event_type} v{version} -> v{version + 1} returned "
                    f"{type(current).__name__}, not a dict"
                )
        return current


def _validate(
    cls: type[DomainEvent],
    payload: dict[str, Any],
    event_id: uuid.UUID,
    occurred_at: Any,
    metadata: dict[str, Any],
) -> DomainEvent:
    try:
        return cls.model_validate(
            {**payload, "event_id": event_id, "occurred_at": occurred_at, "metadata": metadata}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidEventError(
            f"stored event {event_id} ({cls.event_type} v{cls.schema_version}) does not fit "
            f"{cls.__qualname__}: {exc.error_count()} error(s), "
            f"first {first['loc']}: {first['msg']}"
        ) from exc
