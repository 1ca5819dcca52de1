"""Immutable records shared by every port and adapter."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .errors import InvalidEventError

_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def event_id_from(value: object) -> uuid.UUID:
    """An event id as a :class:`uuid.UUID`, from a UUID or its canonical string.

    The one rule for event ids everywhere (:class:`StoredEvent`, :class:`DomainEvent`, JSON
    Lines): users write ``str(uuid4())`` all the time, so the canonical 36-character form
    (``8-4-4-4-12`` hex digits, any case) is accepted and converted; anything else is refused
    with :class:`InvalidEventError` rather than guessed at (no bare hex, no braces, no URNs).
    """
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return uuid.UUID(value)
    raise InvalidEventError(
        f"event_id must be a uuid.UUID or its canonical string form "
        f"('xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx'), got {value!r}"
    )


class ExpectedVersion(enum.Enum):
    """Symbolic expectations for :meth:`~eventlab.ports.EventStore.append`.

    An ``int`` expectation means "the stream is exactly at this version" (0 = a new stream).
    """

    ANY = "any"
    """Append after whatever the stream holds; never a conflict."""
    NO_STREAM = "no_stream"
    """The stream must not exist yet (same as ``0``)."""
    STREAM_EXISTS = "stream_exists"
    """The stream must hold at least one event."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store holds it: an envelope around a plain-dict payload.

    ``position`` is ``None`` until the store assigns the event its place in the global order.
    ``recorded_at`` is set by the store when it writes the event.
    """

    event_id: uuid.UUID
    """The event's identity; a canonical UUID string is accepted and converted."""
    event_type: str
    aggregate_id: str
    aggregate_type: str
    version: int
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default=None)  # type: ignore[assignment]
    schema_version: int = 1
    position: int | None = None
    recorded_at: datetime | None = None
    tags: tuple[str, ...] = ()
    """The event's tags (Dynamic Consistency Boundaries, ``eventlab.dcb``); empty for stream
    events."""

    def __repr__(self) -> str:
        # Short, so that a list of events reads as a list in a notebook cell.
        place = f"#{self.position} " if self.position is not None else ""
        when = self.occurred_at.isoformat(timespec="seconds") if self.occurred_at else "?"
        return (
            f"StoredEvent({place}{self.aggregate_id} v{self.version} {self.event_type} at {when})"
        )

    def __post_init__(self) -> None:
        # Cheap checks only: this runs for every event loaded, so it stays at a few attribute tests.
        if not isinstance(self.event_id, uuid.UUID):
            # Frozen: the one place a field is normalised, before anyone can see the record.
            object.__setattr__(self, "event_id", event_id_from(self.event_id))
        if not self.event_type or not isinstance(self.event_type, str):
            raise InvalidEventError(f"event_type must be a non-empty string: {self.event_type!r}")
        if not self.aggregate_id or not isinstance(self.aggregate_id, str):
            raise InvalidEventError(
                f"aggregate_id must be a non-empty string: {self.aggregate_id!r}"
            )
        if type(self.version) is not int or self.version < 1:
            raise InvalidEventError(f"version must be an int >= 1, got {self.version!r}")
        if type(self.schema_version) is not int or self.schema_version < 1:
            raise InvalidEventError(
                f"schema_version must be an int >= 1, got {self.schema_version!r}"
            )
        if not isinstance(self.occurred_at, datetime):
            raise InvalidEventError(
                f"occurred_at must be an aware datetime, got {self.occurred_at!r}"
            )
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise InvalidEventError(
                f"occurred_at of event {self.event_id} is a naive datetime; "
                "use an aware UTC datetime (datetime.now(UTC))"
            )
        if not isinstance(self.payload, dict):
            raise InvalidEventError(f"payload must be a dict, got {type(self.payload).__name__}")
        if not isinstance(self.metadata, dict):
            raise InvalidEventError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        if self.tags:
            _check_tags(self)

    @property
    def correlation_id(self) -> Any:
        """``metadata["correlation_id"]`` or ``None``."""
        return self.metadata.get("correlation_id")

    @property
    def causation_id(self) -> Any:
        """``metadata["causation_id"]`` or ``None``."""
        return self.metadata.get("causation_id")

    def with_position(self, position: int, recorded_at: datetime | None = None) -> StoredEvent:
        """A copy placed at ``position`` in the global order."""
        return replace(self, position=position, recorded_at=recorded_at or self.recorded_at)


def _check_tags(event: StoredEvent) -> None:
    tags = event.tags
    if isinstance(tags, list):
        tags = tuple(tags)
        object.__setattr__(event, "tags", tags)
    if not isinstance(tags, tuple) or not all(isinstance(t, str) and t for t in tags):
        raise InvalidEventError(f"tags must be non-empty strings, got {tags!r:.80}")


DCB_STREAM_PREFIX = "dcb:"
"""DCB events are stored as streams ``dcb:<position>`` (version 1): a prefix stream appends may
not use, or such a stream would take a position's place."""


@dataclass(frozen=True, slots=True)
class StreamVersions:
    """Which events of one stream a read wants: ``after < version <= to`` (no ``to``: up to
    the stream's last), oldest first or newest first, at most ``max_count`` of them (newest
    first, the last ``max_count``). Checked by whoever makes it."""

    after: int = 0
    to: int | None = None
    backwards: bool = False
    max_count: int | None = None
