"""Event files, written and read in chunks: JSON Lines, and Parquet with a fixed schema.

A Parquet export holds the same record as a JSON line: the envelope in typed columns, and
``payload`` and ``metadata`` as MongoDB Extended JSON text (exact decimals, UUIDs and times,
readable by any Parquet tool, e.g. DuckDB's ``json_extract``). One schema for every event is
what lets the file be written row group by row group, in memory independent of the store's
size. For a flattened, typed table of a store, ``(await read_frame(store)).to_parquet(path)``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import pyarrow as pa
import pyarrow.parquet as pq

from .._core.errors import ConfigurationError
from .._core.records import StoredEvent
from ._jsonl import DataFormatError, event_from_json, event_to_json, iter_jsonl

FileFormat = Literal["jsonl", "parquet"]
CHUNK = 2000
"""Events per chunk read or written (a Parquet row group)."""

_TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("aggregate_id", pa.string()),
        ("aggregate_type", pa.string()),
        ("version", pa.int64()),
        ("schema_version", pa.int64()),
        ("position", pa.int64()),
        ("occurred_at", _TIME),
        ("recorded_at", _TIME),
        ("payload", pa.string()),
        ("metadata", pa.string()),
        ("tags", pa.list_(pa.string())),
    ]
)
_OPTIONAL = {"tags"}
"""Columns a file may lack: tags (only DCB events have them)."""


def file_format(path: Path, given: str | None = None) -> FileFormat:
    """The format asked for, or the one the file's suffix names (``.parquet``), else JSON
    Lines."""
    if given is None:
        return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl"
    if given not in ("jsonl", "parquet"):
        raise ConfigurationError(f"format must be 'jsonl' or 'parquet', got {given!r}")
    return given  # type: ignore[return-value]


class EventFileWriter:
    """Writes events to ``path`` chunk by chunk (``with EventFileWriter(path) as out:
    out.write(events)``); the directory must exist: a typo must not create directories."""

    def __init__(self, path: str | Path, file_format: FileFormat = "jsonl") -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                f"directory {self.path.parent} does not exist (nothing was written)"
            )
        self.format = file_format
        self.written = 0
        self._text: Any = None
        self._parquet: pq.ParquetWriter | None = None

    @property
    def _partial(self) -> Path:
        return self.path.with_name(self.path.name + ".partial")

    def __enter__(self) -> Self:
        # Written beside the file and renamed at the end: a failed export leaves no half file
        # under the name asked for.
        if self.format == "parquet":
            self._parquet = pq.ParquetWriter(self._partial, SCHEMA)
        else:
            self._text = self._partial.open("w", encoding="utf-8")
        return self

    def write(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        if self._parquet is not None:
            rows = [json.loads(event_to_json(e)) for e in events]
            for row in rows:
                row["payload"] = json.dumps(row["payload"], separators=(",", ":"))
                row["metadata"] = json.dumps(row["metadata"], separators=(",", ":"))
                row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
                if row["recorded_at"]:
                    row["recorded_at"] = datetime.fromisoformat(row["recorded_at"])
            self._parquet.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
        else:
            self._text.writelines(event_to_json(e) + "\n" for e in events)
        self.written += len(events)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._text is not None:
            self._text.close()
        if exc_type is None:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)


def iter_event_chunks(
    path: str | Path, file_format: FileFormat = "jsonl", *, chunk: int = CHUNK
) -> Iterator[list[StoredEvent]]:
    """The events of a file, ``chunk`` at a time (a malformed record names its place)."""
    path = Path(path)
    if file_format == "jsonl":
        batch: list[StoredEvent] = []
        for event in iter_jsonl(path):
            batch.append(event)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch
        return
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataFormatError(str(path), 0, f"not a Parquet file of events: {exc}") from exc
    present = set(parquet.schema_arrow.names)
    missing = set(SCHEMA.names) - present - _OPTIONAL
    if missing:
        raise DataFormatError(
            str(path), 0, f"not an eventlab Parquet export (no {', '.join(sorted(missing))})"
        )
    row = 0
    columns = [name for name in SCHEMA.names if name in present]
    for records in parquet.iter_batches(batch_size=chunk, columns=columns):
        events = []
        for record in records.to_pylist():
            row += 1
            events.append(_event(record, str(path), row))
        yield events


def _event(record: dict[str, Any], path: str, row: int) -> StoredEvent:
    try:
        line = {
            **record,
            "occurred_at": record["occurred_at"].isoformat(),
            "recorded_at": record["recorded_at"].isoformat() if record["recorded_at"] else None,
            "payload": json.loads(record["payload"] or "{}"),
            "metadata": json.loads(record["metadata"] or "{}"),
        }
        uuid.UUID(str(record["event_id"]))
        return event_from_json(json.dumps(line))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(path, row, f"row {row}: {exc}") from exc


class StreamCheck:
    """The invariants of a file of events, checked chunk by chunk before anything is written:
    each stream's versions contiguous, no position twice. Memory: one entry per stream."""

    def __init__(self) -> None:
        self.events = 0
        self.last_version: dict[str, int] = {}
        self.last_position = 0
        self.ordered = True
        self.problems: list[str] = []

    def take(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            self.events += 1
            position = event.position or 0
            if position and position <= self.last_position:
                self.ordered = False
            self.last_position = max(self.last_position, position)
            last = self.last_version.get(event.aggregate_id)
            if last is not None and event.version != last + 1 and len(self.problems) < 5:
                kind = "a duplicated version" if event.version <= last else "a version gap"
                self.problems.append(
                    f"{kind} in stream {event.aggregate_id!r} (v{last} then v{event.version})"
                )
            self.last_version[event.aggregate_id] = event.version
