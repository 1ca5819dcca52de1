"""JSON Lines: one StoredEvent per line.

Envelope fields are plain JSON (ids as strings, ISO-8601 datetimes); ``payload`` and ``metadata``
use MongoDB Extended JSON (relaxed) so that Decimal (``{"$numberDecimal": …}``), UUID
(``{"$binary": {…, "subType": "04"}}``) and datetimes inside payloads round-trip exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson import Decimal128, json_util
from bson.binary import UuidRepresentation
from bson.json_util import JSONMode, JSONOptions

from .._core.bson_values import decimal128_to_decimal, to_bson_value
from .._core.errors import DataError, EventlabError
from .._core.records import StoredEvent, event_id_from

_JSON_OPTIONS = JSONOptions(
    json_mode=JSONMode.RELAXED, uuid_representation=UuidRepresentation.STANDARD, tz_aware=True
)


class DataFormatError(DataError):
    """A line of an events file is malformed (the file and line number are named)."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


def extended_json(value: Any) -> str:
    """``value`` (a payload's value as a frame holds it) as MongoDB Extended JSON (relaxed):
    exact decimals, UUIDs and times kept."""
    return json_util.dumps(to_bson_value(value, "value"), json_options=_JSON_OPTIONS)


def event_to_json(event: StoredEvent) -> str:
    """One line of JSON for ``event`` (no trailing newline)."""
    record: dict[str, Any] = {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "aggregate_id": event.aggregate_id,
        "aggregate_type": event.aggregate_type,
        "version": event.version,
        "schema_version": event.schema_version,
        "position": event.position,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat() if event.recorded_at else None,
        "payload": json.loads(
            json_util.dumps(to_bson_value(event.payload), json_options=_JSON_OPTIONS)
        ),
        "metadata": json.loads(
            json_util.dumps(to_bson_value(event.metadata, "metadata"), json_options=_JSON_OPTIONS)
        ),
    }
    if event.tags:  # DCB events (eventlab.dcb)
        record["tags"] = list(event.tags)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def loads_extended(text: str) -> Any:
    """JSON text with its Extended JSON wrappers (``{"$numberDecimal": ...}``) read as
    ``json_util.loads`` reads them, decimals then made Python's (as
    :func:`~eventlab._core.bson_values.decimals_to_python` makes them): the wrappers are
    converted by a hook the JSON decoder calls for each object, bottom-up, and text without
    any ``$`` (nor an escape that could spell one) is read without it."""
    if ("$" in text or "\\u" in text) and text[:1] != "\ufeff":  # json.loads refuses a BOM
        return _EXTENDED_DECODER.decode(text)
    return json.loads(text)


def _extended_json_hook(document: dict[str, Any]) -> Any:
    """One decoded JSON object: an Extended JSON wrapper as its value, any other as it is.

    A decimal written plainly (``-12.340``, at most 34 digits, which Decimal128 holds exactly
    as written) becomes the :class:`~decimal.Decimal` that ``Decimal128(text).to_decimal()``
    gives, without the Decimal128 in between (most of an import's parsing time went there);
    any other wrapper is left to ``json_util``."""
    if len(document) == 1:
        text = document.get("$numberDecimal")
        if type(text) is str and _is_plain_decimal(text):
            return Decimal(text)
    for key in document:
        if key[:1] == "$":
            try:
                value = json_util.object_hook(document, _JSON_OPTIONS)
            except Exception as exc:  # any failure of the parser is the file's
                raise ValueError(f"malformed Extended JSON {document!r:.80}: {exc!r:.120}") from exc
            return decimal128_to_decimal(value) if type(value) is Decimal128 else value
    return document


_EXTENDED_DECODER = json.JSONDecoder(object_hook=_extended_json_hook)
"""Made once: ``json.loads`` with a hook builds a decoder per call (a sixth of a line's read)."""

_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _is_plain_decimal(text: str) -> bool:
    """Digits, one optional point and sign, at most 34 digits: exact in Decimal128."""
    digits = len(text) - (text[:1] == "-") - ("." in text)
    return digits <= 34 and _PLAIN_DECIMAL.fullmatch(text) is not None


def event_from_json(line: str) -> StoredEvent:
    """The StoredEvent of one JSON line (raises ValueError/KeyError/TypeError when malformed)."""
    try:
        record = loads_extended(line)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not JSON (column {exc.colno}: {exc.msg.lower()}); an events file holds one JSON "
            "object per line"
        ) from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply to read (MongoDB stores 100 levels)") from exc
    if not isinstance(record, dict):
        raise ValueError(
            f"a JSON {type(record).__name__}, not an object; an events file holds one JSON "
            "object per line"
        )
    recorded = _plain(record, "recorded_at", str, None)
    return StoredEvent(
        event_id=event_id_from(_plain(record, "event_id", str)),
        event_type=_plain(record, "event_type", str),
        aggregate_id=_plain(record, "aggregate_id", str),
        aggregate_type=_plain(record, "aggregate_type", str),
        version=_plain(record, "version", int),
        payload=record.get("payload", {}),
        metadata=record.get("metadata") or {},
        occurred_at=datetime.fromisoformat(_plain(record, "occurred_at", str)),
        schema_version=_plain(record, "schema_version", int, 1),
        position=_plain(record, "position", int, None),
        recorded_at=datetime.fromisoformat(recorded) if recorded else None,
        tags=tuple(record.get("tags") or ()),
    )


_REQUIRED: Any = object()
_JSON_KINDS = {str: "a JSON string", int: "a JSON integer"}


def _plain(record: dict[str, Any], name: str, kind: type, default: Any = _REQUIRED) -> Any:
    """An envelope field as plain JSON (the format's envelope has no Extended JSON)."""
    if name not in record and default is not _REQUIRED:
        return default
    value = record[name]  # a KeyError names the missing field
    if type(value) is kind or (value is None and default is None):
        return value
    raise TypeError(f"{name} must be {_JSON_KINDS[kind]}, got {type(value).__name__} {value!r:.60}")


def iter_jsonl(path: str | Path) -> Iterator[StoredEvent]:
    """Events of a JSON Lines file (UTF-8), one at a time; blank lines are skipped. A file
    that cannot be read as one names the line and the reason (:class:`DataFormatError`)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except IsADirectoryError as exc:
        raise DataFormatError(str(path), 0, "is a directory, not a file of events") from exc
    except OSError as exc:
        raise DataFormatError(str(path), 0, f"cannot open: {exc.strerror}") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    str(path),
                    number,
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                    "an events file is UTF-8 JSON Lines",
                ) from exc
            if not line.strip():
                continue
            try:
                yield event_from_json(line)
            except EventlabError as exc:
                raise DataFormatError(str(path), number, str(exc)) from exc
            except (ValueError, KeyError, TypeError) as exc:
                reason = (
                    f"the event lacks its {exc} field (see data/README.md for the format)"
                    if isinstance(exc, KeyError)
                    else str(exc)
                )
                raise DataFormatError(str(path), number, reason) from exc


def load_jsonl(path: str | Path) -> list[StoredEvent]:
    """All events of a JSON Lines file (the whole file is parsed before anything is returned)."""
    return list(iter_jsonl(path))


def dump_jsonl(events: Iterable[StoredEvent], path: str | Path) -> int:
    """Write ``events`` as JSON Lines; returns how many were written.

    The file's directory must exist: a typo in a path must not create directories elsewhere.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"directory {path.parent} does not exist (nothing was written)")
    written = 0
    with path.open("w", encoding="utf-8") as handle:
        for event in events:
            handle.write(event_to_json(event))
            handle.write("\n")
            written += 1
    return written
