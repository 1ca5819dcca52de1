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

from .._core.errors import ConfigurationError, EventlabError
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
    out.write(events)``); the directory must exist: a typo must not create directories. The
    events go to a unique temporary file beside ``path``, renamed to it when complete: a
    failed export leaves nothing behind, and never half a file under the name asked for."""

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
        self._partial = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.partial")

    def check_target(self, *, overwrite: bool) -> None:
        """Refuse a ``path`` that is a directory, a device, a pipe or a symbolic link (the
        export is renamed into place: it would replace the link, not write through it), or a
        file unless ``overwrite``."""
        if str(self.path) == "-":
            raise FileExistsError(
                "export writes a file: give its name, not - (nothing was written)"
            )
        if self.path.is_symlink():
            raise FileExistsError(
                f"{self.path} is a symbolic link: give the path it points to (nothing was written)"
            )
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory (nothing was written)")
        if self.path.exists() and not self.path.is_file():
            raise FileExistsError(f"{self.path} is not a regular file (nothing was written)")
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"{self.path} exists: pass --force to overwrite it (nothing was written)"
            )

    def __enter__(self) -> Self:
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
        try:
            if self._parquet is not None:
                self._parquet.close()
            if self._text is not None:
                self._text.close()
            if exc_type is None:
                self._partial.replace(self.path)
        finally:
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
    if path.is_dir():
        raise DataFormatError(str(path), 0, "is a directory, not a file of events")
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFormatError(str(path), 0, f"not a Parquet file of events: {reason}") from exc
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
            # A null payload is refused, as in JSON Lines; a null metadata is none, as there.
            "payload": None if record["payload"] is None else json.loads(record["payload"]),
            "metadata": json.loads(record["metadata"] or "{}"),
        }
        uuid.UUID(str(record["event_id"]))
        return event_from_json(json.dumps(line))
    except RecursionError as exc:
        raise DataFormatError(path, row, f"row {row}: nested too deeply to read") from exc
    except (EventlabError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataFormatError(path, row, f"row {row}: {exc}") from exc
