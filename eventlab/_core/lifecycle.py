"""Stream lifecycle, the rules every backend shares: a stream's metadata (truncation,
retention, deletion), which of its versions a read returns, which a scavenge may remove, the
deletion markers, and the document that replaces a removed event (docs/lifecycle.md).

A removed event is replaced *in place* by a tombstone (:mod:`.tombstones`) that keeps the
event's ``_id``, ``aggregate_id``, ``version`` and ``position``: the position stays occupied,
so followers report it as a permanent gap (never a hole they wait on), and the
``(aggregate_id, version)`` key stays taken, so a stream's version never moves backwards and no
append can reuse a removed version.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from .checks import check_aggregate_id, check_int, check_positive
from .domain import utc_now
from .errors import ConfigurationError, InvalidEventError, InvalidIdError, StreamDeletedError
from .records import DCB_STREAM_PREFIX, StoredEvent, StreamVersions
from .tombstones import TOMBSTONE_FIELD

STREAM_DELETED = "eventlab.StreamDeleted"
"""The event type of a soft deletion's marker: appended to the stream itself (at the expected
version's next version), so that a delete and an append at the same expected version race on
the same unique ``(aggregate_id, version)`` key and exactly one commits."""

STREAM_DELETED_PERMANENTLY = "eventlab.StreamDeletedPermanently"
"""The event type of a permanent deletion's marker: the stream's last event forever (every
later append is refused with :class:`~eventlab.StreamDeletedError`); never scavenged."""

LIFECYCLE_EVENT_TYPES = (STREAM_DELETED, STREAM_DELETED_PERMANENTLY)

_APPENDING_A_MARKER: ContextVar[bool] = ContextVar("eventlab_appending_a_marker", default=False)


@contextmanager
def appending_a_marker() -> Iterator[None]:
    """The lifecycle's own append of a deletion marker (the only one allowed its type)."""
    token = _APPENDING_A_MARKER.set(True)
    try:
        yield
    finally:
        _APPENDING_A_MARKER.reset(token)


def check_not_reserved(event: StoredEvent) -> None:
    """Refuse an event that carries a lifecycle marker's type: appended by anyone but
    ``lifecycle().delete`` it would delete its stream with no record of a deletion (a
    permanent marker refuses every append after it)."""
    if event.event_type in LIFECYCLE_EVENT_TYPES and not _APPENDING_A_MARKER.get():
        raise InvalidEventError(
            f"event type {event.event_type!r} is reserved for the stream lifecycle: delete a "
            "stream with store.lifecycle().delete(...)"
        )


"""What a projection handles (``@on(*LIFECYCLE_EVENT_TYPES)``) to hear of deleted streams."""

SCAVENGED = "scavenged"
"""The ``reason`` recorded on the tombstone that replaced a removed event."""

Deletion = Literal["soft", "permanent"]

_MAX_AGE = timedelta(days=365_000)


@dataclass(frozen=True, slots=True)
class StreamMetadata:
    """What a stream's lifecycle records about it (all unset for a stream never touched)."""

    aggregate_id: str
    truncate_before: int = 0
    """Versions below this one are hidden from reads and removable by a scavenge."""
    max_count: int | None = None
    """Only the last ``max_count`` versions are kept."""
    max_age: timedelta | None = None
    """Events recorded longer ago than this are hidden from reads and removable."""
    deleted: Deletion | None = None
    """How the stream was last deleted (a soft-deleted stream appended to again stays
    ``"soft"``: its reads start after the marker)."""
    deleted_version: int | None = None
    """The version of the last deletion's marker."""
    updated_at: datetime | None = field(default=None, compare=False)

    def floor(self, current_version: int) -> int:
        """The first version a read of the stream returns (before the age rule), the stream
        being at ``current_version``."""
        first = max(1, self.truncate_before)
        if self.max_count is not None:
            first = max(first, current_version - self.max_count + 1)
        return first

    def cutoff(self, now: datetime) -> datetime | None:
        """Events recorded before this are expired (``None``: no age rule)."""
        return None if self.max_age is None else now - self.max_age

    @property
    def has_policy(self) -> bool:
        """Whether anything may be removed from the stream at all."""
        return bool(
            self.truncate_before > 1
            or self.max_count is not None
            or self.max_age is not None
            or self.deleted == "permanent"
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.aggregate_id,
            "truncate_before": self.truncate_before,
            "max_count": self.max_count,
            "max_age_seconds": None if self.max_age is None else self.max_age.total_seconds(),
            "deleted": self.deleted,
            "deleted_version": self.deleted_version,
            "updated_at": utc_now(),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> StreamMetadata:
        seconds = document.get("max_age_seconds")
        return cls(
            aggregate_id=document["_id"],
            truncate_before=int(document.get("truncate_before") or 0),
            max_count=document.get("max_count"),
            max_age=None if seconds is None else timedelta(seconds=seconds),
            deleted=document.get("deleted"),
            deleted_version=document.get("deleted_version"),
            updated_at=document.get("updated_at"),
        )


@dataclass(frozen=True, slots=True)
class ScavengeReport:
    """What a scavenge removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    streams: int = 0
    """Streams with a policy that were examined."""
    removed: int = 0
    """Events replaced by tombstones (or that would be)."""
    by_stream: dict[str, int] = field(default_factory=dict)
    """Events removed per stream (streams with none left out)."""
    snapshots_deleted: int = 0
    """Snapshots that stood below what the stream keeps (or would be deleted)."""

    def merged(self, aggregate_id: str, removed: int, snapshot: bool) -> ScavengeReport:
        by_stream = {**self.by_stream, aggregate_id: removed} if removed else self.by_stream
        return replace(
            self,
            streams=self.streams + 1,
            removed=self.removed + removed,
            by_stream=by_stream,
            snapshots_deleted=self.snapshots_deleted + int(snapshot),
        )


# -- arguments -------------------------------------------------------------------------------


def check_stream(aggregate_id: Any) -> str:
    """A stream id a lifecycle operation may touch: a plain non-empty string, not DCB's."""
    checked = check_aggregate_id(aggregate_id)
    if checked.startswith(DCB_STREAM_PREFIX):
        raise InvalidIdError(
            f"aggregate_id {checked[:80]!r}: streams starting with {DCB_STREAM_PREFIX!r} hold "
            "DCB events; their lifecycle is the log's, not a stream's"
        )
    return checked


# -- refusals: each operation and its dry run refuse by the same rule, with the same error ---


def unless_permanent(aggregate_id: str, metadata: StreamMetadata | None) -> StreamMetadata:
    """The stream's metadata (all unset for a stream never given any); a stream deleted
    permanently refuses every lifecycle operation with :class:`~eventlab.StreamDeletedError`."""
    if metadata is None:
        return StreamMetadata(aggregate_id)
    if metadata.deleted == "permanent":
        raise StreamDeletedError(aggregate_id, metadata.deleted_version)
    return metadata


def check_truncation(aggregate_id: str, before: int, current_version: int) -> None:
    """A truncation goes at most to the stream's next version."""
    if before > current_version + 1:
        raise ConfigurationError(
            f"before_version {before:,} is beyond stream {aggregate_id[:80]!r}'s next "
            f"version ({current_version + 1:,})"
        )


def check_max_age(value: Any) -> timedelta | None:
    """A retention age: a positive :class:`timedelta` (or seconds as an int or float)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"max_age must be a timedelta or a number of seconds, got {type(value).__name__}"
        )
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0 or value > _MAX_AGE.total_seconds():
            raise ConfigurationError(f"max_age must be positive seconds, got {value!r:.40}")
        age = timedelta(seconds=value)
    else:
        age = value
    if age <= timedelta(0) or age > _MAX_AGE:
        raise ConfigurationError(f"max_age must be a positive duration, got {age!r:.60}")
    return age


def check_max_count(value: Any) -> int | None:
    return None if value is None else check_positive(value, "max_count")


def check_version(value: Any, name: str) -> int:
    return check_positive(value, name)


def check_batch_size(value: Any) -> int:
    number = check_positive(value, "batch_size")
    if number > 10_000:
        raise ConfigurationError(f"batch_size must be at most 10,000, got {number:,}")
    return check_int(number, "batch_size")


# -- reads -----------------------------------------------------------------------------------


def narrowed(
    metadata: StreamMetadata | None, versions: StreamVersions, current_version: int
) -> StreamVersions:
    """``versions`` without what the stream's truncation and retention hide, and without its
    count: on a stream with metadata, tombstones and expired events are dropped after the read
    (:func:`kept`), and the count applies to what is kept."""
    if metadata is None:
        return versions
    first = metadata.floor(current_version)
    return replace(versions, after=max(versions.after, first - 1), max_count=None)


def kept(
    documents: list[dict[str, Any]], cutoff: datetime | None, count: int | None = None
) -> list[dict[str, Any]]:
    """The documents a read returns, at most ``count`` (in the read's order): no tombstone,
    nothing expired by age."""
    found = [
        d
        for d in documents
        if not d.get(TOMBSTONE_FIELD) and (cutoff is None or not _older(d, cutoff))
    ]
    return found if count is None else found[:count]


def _older(document: dict[str, Any], cutoff: datetime) -> bool:
    recorded: datetime | None = document.get("recorded_at")
    return recorded is not None and recorded < cutoff


# -- scavenging ------------------------------------------------------------------------------


def removable(
    metadata: StreamMetadata, document: dict[str, Any], current_version: int, now: datetime
) -> bool:
    """Whether a scavenge may replace ``document`` (an event of the stream) by a tombstone.

    Never a deletion marker, soft or permanent: a follower or projection that passes the
    stream's events only after the scavenge still receives the deletion (docs/lifecycle.md)."""
    if document.get(TOMBSTONE_FIELD) or document.get("event_type") in LIFECYCLE_EVENT_TYPES:
        return False
    version: int = document["version"]
    if metadata.deleted == "permanent" and metadata.deleted_version is not None:
        return version < metadata.deleted_version
    if version < metadata.floor(current_version):
        return True
    cutoff = metadata.cutoff(now)
    return cutoff is not None and _older(document, cutoff)


def scavenged(document: dict[str, Any]) -> dict[str, Any]:
    """The tombstone that replaces a removed event at its position (same ``_id``, stream and
    version: the position and the version stay taken)."""
    return {
        "_id": document["_id"],
        "aggregate_id": document["aggregate_id"],
        "aggregate_type": document.get("aggregate_type"),
        "version": document["version"],
        "position": document["position"],
        TOMBSTONE_FIELD: True,
        "reason": SCAVENGED,
        "recorded_at": utc_now(),
    }


def deletion_marker(
    aggregate_id: str, aggregate_type: str, *, permanent: bool, reason: str | None
) -> StoredEvent:
    """The event a delete appends to the stream itself (its version is set by the append)."""
    payload: dict[str, Any] = {"permanent": permanent}
    if reason is not None:
        payload["reason"] = reason
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type=STREAM_DELETED_PERMANENTLY if permanent else STREAM_DELETED,
        aggregate_id=aggregate_id,
        aggregate_type=aggregate_type,
        version=1,
        payload=payload,
        occurred_at=utc_now(),
    )


MAX_REASON = 1000
"""The longest ``reason`` a deletion records, in characters."""


def check_reason(value: Any) -> str | None:
    """A deletion's reason: ``None``, or UTF-8 text of at most :data:`MAX_REASON` characters,
    no NUL."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(
            f"reason must be a string of at most {MAX_REASON:,} characters, got "
            f"{type(value).__name__}"
        )
    if len(value) > MAX_REASON:
        raise ConfigurationError(
            f"reason must be at most {MAX_REASON:,} characters, got {len(value):,}"
        )
    if "\x00" in value:
        raise ConfigurationError("reason contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigurationError(
                f"reason is not UTF-8 text: a lone surrogate at index {exc.start}"
            ) from None
    return value
