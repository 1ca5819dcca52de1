"""An archive's Parquet files: the flat export's columns (the frame's typed columns, which
DuckDB, Polars and pyarrow read as they are) plus ``_document``, the stored document as BSON,
so that reads and restores give back every event exactly as it was stored.

Files are laid out as the flat export's, Hive-partitioned by the UTC day events were recorded:
``day=2026-03-01/part-<first>-<last>-<id>.parquet``. Each file's SHA-256 is in the manifest;
a file is checked against it every time it is loaded.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import bson
import pyarrow as pa
import pyarrow.parquet as pq
from bson.codec_options import CodecOptions

from .._core.bson_values import CODEC_OPTIONS
from .._core.errors import ArchiveError
from ..workbench._frame_build import FrameBuilder
from ._location import ArchiveLocation
from ._manifest import Segment

DOCUMENT = "_document"
INDEX_COLUMNS = ("position", "aggregate_id", "version", "event_type", "aggregate_type")
"""The columns a read through the archive selects by (read with ``_document``)."""
TIME_COLUMNS = ("recorded_at", "occurred_at")


def write_segments(location: ArchiveLocation, documents: Sequence[dict[str, Any]]) -> list[Segment]:
    """The documents (in position order) as one file per day, each written whole, read back
    and checked before it is named; the segments to put in the manifest."""
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in documents:
        recorded = doc.get("recorded_at") or doc["occurred_at"]
        by_day[_day(recorded)].append(doc)
    segments = []
    for day, docs in sorted(by_day.items()):
        data = encode(docs)
        first, last = int(docs[0]["position"]), int(docs[-1]["position"])
        name = f"day={day}/part-{first:012d}-{last:012d}-{uuid.uuid4().hex[:8]}.parquet"
        location.write(name, data)
        segment = Segment(name, hashlib.sha256(data).hexdigest(), len(docs), first, last)
        check(segment, location.read(name), location)  # what is on the medium, not in memory
        segments.append(segment)
    return segments


def encode(documents: Sequence[dict[str, Any]]) -> bytes:
    builder = FrameBuilder()
    builder.add(documents)
    table = builder.arrow()
    encoded = [bson.encode(doc, codec_options=CODEC_OPTIONS) for doc in documents]
    table = table.append_column(DOCUMENT, pa.array(encoded, pa.binary()))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def check(segment: Segment, data: bytes, location: ArchiveLocation) -> pa.Table:
    """The segment's index columns and documents, if ``data`` is the file the manifest names
    (its checksum, its row count, its first and last positions); else :class:`ArchiveError`."""
    if hashlib.sha256(data).hexdigest() != segment.sha256:
        raise ArchiveError(
            f"{location.url}: {segment.path} does not match its checksum in the manifest "
            "(changed or damaged since it was written)"
        )
    try:
        table = pq.read_table(io.BytesIO(data), columns=[*INDEX_COLUMNS, *TIME_COLUMNS, DOCUMENT])
    except (pa.ArrowException, OSError) as exc:
        raise ArchiveError(f"{location.url}: {segment.path} is unreadable: {exc}") from exc
    positions = table["position"]
    if (
        table.num_rows != segment.events
        or positions[0].as_py() != segment.first
        or positions[-1].as_py() != segment.last
    ):
        raise ArchiveError(f"{location.url}: {segment.path} does not hold what its manifest says")
    return table


def decode(
    values: Sequence[bytes], codec_options: CodecOptions[dict[str, Any]] = CODEC_OPTIONS
) -> list[dict[str, Any]]:
    """Stored documents from their BSON (as the driver would have decoded them with
    ``codec_options``)."""
    return [bson.decode(value, codec_options=codec_options) for value in values]


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return "unknown"
