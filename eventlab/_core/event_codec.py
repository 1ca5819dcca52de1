"""StoredEvent ↔ MongoDB document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bson
from bson.errors import InvalidDocument

from .bson_values import (
    CODEC_OPTIONS,
    decimals_to_python,
    find_unencodable_int,
    same_bson_value,
    to_bson_datetime,
    to_bson_value,
)
from .errors import DocumentTooLargeError, SerializationError
from .records import StoredEvent


def event_body(event: StoredEvent) -> dict[str, Any]:
    """The document of ``event`` without store-assigned fields, BSON-ready.

    Raises :class:`~eventlab.SerializationError` naming the offending path, before any I/O.
    """
    where = f"event {event.event_id} ({event.event_type})"
    body: dict[str, Any] = {
        "_id": event.event_id,
        "event_type": event.event_type,
        "aggregate_id": event.aggregate_id,
        "aggregate_type": event.aggregate_type,
        "version": event.version,
        "payload": to_bson_value(event.payload, f"{where} payload"),
        "metadata": to_bson_value(event.metadata, f"{where} metadata"),
        "occurred_at": to_bson_datetime(event.occurred_at, f"{where} occurred_at"),
        "schema_version": event.schema_version,
    }
    if event.tags:  # DCB events only: stream events carry no tags field (no index key)
        body["tags"] = list(event.tags)
    return body


def stored_document(event: StoredEvent) -> dict[str, Any]:
    """The full document of an event that already has its store fields (a restore, a copy)."""
    return {**event_body(event), "position": event.position, "recorded_at": event.recorded_at}


def from_document(doc: dict[str, Any]) -> StoredEvent:
    """The :class:`StoredEvent` of a stored document (decoded with eventlab's codec options)."""
    return StoredEvent(
        event_id=doc["_id"],
        event_type=doc["event_type"],
        aggregate_id=doc["aggregate_id"],
        aggregate_type=doc["aggregate_type"],
        version=doc["version"],
        payload=decimals_to_python(doc["payload"]),
        metadata=decimals_to_python(doc.get("metadata") or {}),
        occurred_at=doc["occurred_at"],
        schema_version=doc.get("schema_version", 1),
        position=doc.get("position"),
        recorded_at=doc.get("recorded_at"),
        tags=tuple(doc.get("tags") or ()),
    )


IDENTITY_FIELDS = (
    "event_type",
    "aggregate_id",
    "aggregate_type",
    "version",
    "payload",
    "schema_version",
)
"""What makes a resent event "the same event" (an idempotent retry): its id, its place in the
stream (KurrentDB's rule) and what it says. ``metadata`` and ``occurred_at`` are left out: a
retried command legitimately carries a fresh trace id or timestamp. The stored copy wins."""


def same_client_content(
    body: dict[str, Any], stored: dict[str, Any], *, check_version: bool
) -> bool:
    """True when a stored document is the same event as ``body`` (see ``IDENTITY_FIELDS``).

    Tells an idempotent retry (same id, same event) from an id reused for another event.
    """
    for field in IDENTITY_FIELDS:
        if field == "version" and not check_version:
            continue
        mine = body.get(field)
        theirs = stored.get(field)
        if field in ("payload", "metadata"):
            theirs = to_bson_value(decimals_to_python(theirs or {}), field)
        if not same_bson_value(mine, theirs):
            return False
    return True


def oversized_event(bodies: Iterable[dict[str, Any]], limit: int) -> DocumentTooLargeError | None:
    """The error naming the first event body too large for a server whose documents may hold
    ``limit`` bytes (with room for the store's own fields), or ``None``."""
    for body in bodies:
        try:
            too_large = _too_large(body, limit)
        except (OverflowError, InvalidDocument):
            continue  # not a size problem
        if too_large is not None:
            return too_large
    return None


def refused_body(
    bodies: Iterable[dict[str, Any]], limit: int
) -> DocumentTooLargeError | SerializationError | None:
    """The error naming the first event body a server whose documents may hold ``limit``
    bytes would refuse (too large, or not encodable: an integer beyond 64 bits), or
    ``None``. Each body is encoded once, and searched for its integer only when that fails."""
    for body in bodies:
        try:
            too_large = _too_large(body, limit)
        except (OverflowError, InvalidDocument) as exc:
            return unencodable_int([body]) or SerializationError(
                f"event {body['_id']} ({body['event_type']}) does not encode to BSON: {exc}"
            )
        if too_large is not None:
            return too_large
    return None


def _too_large(body: dict[str, Any], limit: int) -> DocumentTooLargeError | None:
    size = len(bson.encode(body, codec_options=CODEC_OPTIONS))
    if size <= limit - 1024:
        return None
    return DocumentTooLargeError(
        f"event {body['_id']} ({body['event_type']}) encodes to {size:,} bytes; "
        f"the server's limit is {limit:,}"
    )


def unencodable_int(bodies: Iterable[dict[str, Any]]) -> SerializationError | None:
    """The error naming the first integer of an event body beyond BSON's 64 bits, or ``None``."""
    for body in bodies:
        for field in ("payload", "metadata"):
            path = find_unencodable_int(body.get(field), field)
            if path:
                return SerializationError(
                    f"event {body['_id']}: {path} does not fit BSON's 64-bit integers "
                    "(store big numbers as Decimal or str)",
                    path=path,
                )
    return None
