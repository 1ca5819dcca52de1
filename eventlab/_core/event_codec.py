"""StoredEvent ↔ MongoDB document."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument
from bson.raw_bson import RawBSONDocument

from .bson_values import (
    CODEC_OPTIONS,
    decimals_to_python,
    find_unencodable_int,
    not_unicode,
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
            size = len(bson.encode(body, codec_options=CODEC_OPTIONS))
        except (OverflowError, InvalidDocument):
            continue  # not a size problem
        too_large = _too_large(body, size, limit, store_fields_bytes())
        if too_large is not None:
            return too_large
    return None


def encoded_bodies(
    bodies: Iterable[dict[str, Any]], limit: int, positions: Iterable[int | None]
) -> list[bytes]:
    """Each event body as BSON; raises the error naming the first one a server whose
    documents may hold ``limit`` bytes would refuse: too large once stored at its position
    (``None``: one the store will choose), or not encodable (an integer beyond 64 bits, text
    that is not Unicode). Each body is encoded once, and searched for its integer only when
    that fails."""
    encoded = []
    for body, position in zip(bodies, positions, strict=True):
        try:
            data = bson.encode(body, codec_options=CODEC_OPTIONS)
        except (OverflowError, InvalidDocument, UnicodeEncodeError) as exc:
            raise _unencodable(body, exc) from exc
        too_large = _too_large(body, len(data), limit, store_fields_bytes(position))
        if too_large is not None:
            raise too_large
        encoded.append(data)
    return encoded


def _unencodable(body: dict[str, Any], exc: Exception) -> SerializationError:
    where = f"event {body['_id']} ({body['event_type']})"
    if isinstance(exc, UnicodeEncodeError):
        return not_unicode(where, exc)
    return unencodable_int([body]) or SerializationError(f"{where} does not encode to BSON: {exc}")


def unencodable_body(bodies: Iterable[dict[str, Any]]) -> SerializationError | None:
    """The error naming the first event body that does not encode to BSON (an integer beyond
    64 bits, text that is not Unicode), or ``None``: for a write that failed so."""
    for body in bodies:
        try:
            bson.encode(body, codec_options=CODEC_OPTIONS)
        except (OverflowError, InvalidDocument, UnicodeEncodeError) as exc:
            return _unencodable(body, exc)
    return None


def store_fields_bytes(position: int | None = None) -> int:
    """The bytes the store adds to an event's body: ``position`` (a BSON int32 or int64 as
    the value needs; ``None``, not yet known: an int32, as positions are for a store's first
    two billion events) and ``recorded_at`` (a date)."""
    position_bytes = 18 if position is not None and not -(2**31) <= position < 2**31 else 14
    return position_bytes + 21  # type byte, the name and its NUL, the value


def stored_bson(body: bytes, position: int, recorded_at: datetime) -> RawBSONDocument:
    """The BSON of :func:`stored_document` made from an event's encoded body: the store's two
    fields appended to it (the body is not encoded again, nor is the document by the
    driver)."""
    tail = bson.encode(
        {"position": position, "recorded_at": recorded_at}, codec_options=CODEC_OPTIONS
    )
    size = len(body) + len(tail) - 5  # one length prefix and one terminator for the two
    return RawBSONDocument(size.to_bytes(4, "little") + body[4:-1] + tail[4:], _RAW_OPTIONS)


_RAW_OPTIONS: CodecOptions[RawBSONDocument] = CODEC_OPTIONS.with_options(
    document_class=RawBSONDocument
)
"""eventlab's codec options for a document kept as BSON (its fields decode as eventlab's)."""


def _too_large(
    body: dict[str, Any], size: int, limit: int, store_fields: int
) -> DocumentTooLargeError | None:
    """The error for a body of ``size`` bytes that, with the ``store_fields`` bytes the
    store adds, is over ``limit``, or ``None``."""
    stored = size + store_fields
    if stored <= limit:
        return None
    return DocumentTooLargeError(
        f"event {body['_id']} ({body['event_type']}) takes {stored:,} bytes as stored (its "
        f"position and time included); the server's limit is {limit:,}"
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
