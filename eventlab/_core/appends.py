"""What an append is before any backend sees it: the caller's events for one stream, as
records with versions from the expectation and their encoded bodies, and what "the same event"
means for an idempotent retry. Shared by every backend, so all of them accept and refuse the
same things (docs/design.md, "What the same event means")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .checks import check_aggregate_id, normalize_expected
from .domain import DomainEvent, utc_now
from .errors import (
    ConcurrencyError,
    DuplicateEventError,
    InvalidEventError,
    InvalidIdError,
    StreamDeletedError,
)
from .event_codec import event_body, from_document, same_client_content
from .lifecycle import check_not_reserved
from .records import DCB_STREAM_PREFIX, ExpectedVersion, StoredEvent
from .registry import EventRegistry

Expected = int | ExpectedVersion


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events for one stream, with the caller's expectation, and their encoded bodies."""

    aggregate_id: str
    expected: Expected
    events: list[StoredEvent]
    bodies: list[dict[str, Any]]

    @classmethod
    def of(cls, aggregate_id: str, expected: Expected, events: list[StoredEvent]) -> StreamAppend:
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids):
            raise InvalidEventError(f"stream {aggregate_id!r}: the batch repeats an event_id")
        return cls(aggregate_id, expected, events, [event_body(e) for e in events])


def check_appendable_stream(aggregate_id: Any) -> str:
    """A stream id an append may name: a valid id, outside the streams DCB events take."""
    checked = check_aggregate_id(aggregate_id)
    if checked.startswith(DCB_STREAM_PREFIX):
        # DCB events are stored as streams dcb:<position>: a stream of that name would take a
        # position's place and refuse every DCB append at it from then on.
        raise InvalidIdError(
            f"aggregate_id {checked[:80]!r}: stream ids starting with "
            f"{DCB_STREAM_PREFIX!r} are reserved for DCB events"
        )
    return checked


def prepare_stream(
    registry: EventRegistry,
    aggregate_id: Any,
    events: Sequence[DomainEvent | StoredEvent],
    expected_version: Any,
    *,
    aggregate_type: str | None,
    metadata: dict[str, Any] | None,
) -> StreamAppend | None:
    """``append``'s arguments as one :class:`StreamAppend` (``None`` for no events).

    Versions are assigned here from the expectation (``expected + 1`` onwards; for a symbolic
    expectation they are placeholders, fixed once the stream's version is read).
    """
    aggregate_id = check_appendable_stream(aggregate_id)
    expected = normalize_expected(expected_version)
    if not events:
        return None
    base = expected if isinstance(expected, int) else 0
    records: list[StoredEvent] = []
    for offset, event in enumerate(events, start=1):
        if isinstance(event, DomainEvent):
            kind = aggregate_type or type(event).aggregate_type
            if not kind:
                raise InvalidEventError(
                    f"{type(event).__name__} declares no aggregate_type; pass aggregate_type="
                )
            record = registry.to_stored(
                event,
                aggregate_id=aggregate_id,
                aggregate_type=kind,
                version=base + offset,
                metadata=metadata,
            )
        elif isinstance(event, StoredEvent):
            if event.aggregate_id != aggregate_id:
                raise InvalidEventError(
                    f"event {event.event_id} belongs to {event.aggregate_id!r}, "
                    f"not {aggregate_id!r}"
                )
            record = replace(
                event,
                version=base + offset,
                metadata={**event.metadata, **metadata} if metadata else event.metadata,
            )
        else:
            raise InvalidEventError(
                f"append takes DomainEvent or StoredEvent objects, got {type(event).__name__}"
            )
        check_not_reserved(record)
        records.append(record)
    return StreamAppend.of(aggregate_id, expected, records)


def idempotent_result(
    batch: list[StreamAppend], existing: list[dict[str, Any]]
) -> list[StoredEvent]:
    """The stored copies of a resent batch, if it is the same batch; else the error naming
    the ids that differ (or, when none does, the ids stored by another batch)."""
    by_id = {doc["_id"]: doc for doc in existing}
    conflicting = []
    missing = False
    result = []
    for stream in batch:
        fixed_version = isinstance(stream.expected, int)
        for body in stream.bodies:
            doc = by_id.get(body["_id"])
            if doc is None:
                missing = True  # stored in part: these ids were written by another batch
            elif not same_client_content(body, doc, check_version=fixed_version):
                conflicting.append(body["_id"])
            else:
                result.append(from_document(doc))
    if conflicting or missing:
        # Name the ids that differ; if none does, the ones stored by another batch.
        raise DuplicateEventError(conflicting or sorted(by_id, key=str))
    return result


def conflict(
    aggregate_id: str, expected: Expected, actual: int, deleted: bool = False
) -> ConcurrencyError | StreamDeletedError:
    """The error for an append that found its stream elsewhere than expected: deleted
    permanently (its last event the marker), or at another version."""
    if deleted:
        return StreamDeletedError(aggregate_id, actual)
    shown = expected if isinstance(expected, int) else expected.name
    return ConcurrencyError(aggregate_id, shown, actual)


def place(
    batch: list[StreamAppend], bases: list[int], first: int
) -> tuple[list[dict[str, Any]], list[StoredEvent]]:
    """The documents to insert and the events to return, positions from ``first`` on, each
    stream's versions after its base: what every backend writes for an append."""
    recorded_at = utc_now()
    documents: list[dict[str, Any]] = []
    stored: list[StoredEvent] = []
    position = first
    for stream, base in zip(batch, bases, strict=True):
        for offset, (event, body) in enumerate(zip(stream.events, stream.bodies, strict=True)):
            version = base + offset + 1
            documents.append(
                {**body, "version": version, "position": position, "recorded_at": recorded_at}
            )
            stored.append(
                replace(
                    event,
                    version=version,
                    occurred_at=body["occurred_at"],
                    position=position,
                    recorded_at=recorded_at,
                )
            )
            position += 1
    return documents, stored
