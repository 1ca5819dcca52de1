"""A local Parquet copy of a store's log, refreshed by reading only what came after it.

The cache is a directory: ``manifest.json`` and one Parquet file per refresh. Each file holds
the events of a range of positions the log had **settled** when it was read (with
``preallocated`` positions, up to the first position still open: a hole that may yet be
filled, the subscriptions' rule), so a refresh never misses a late commit and never reads an
event twice. The manifest keeps the event ids of a few cached positions; a store whose events
at those positions differ (dropped and rebuilt, another store at the same name) is read again
from the start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
import pyarrow as pa
import pyarrow.parquet as pq

from .._core.bson_values import CODEC_OPTIONS
from .._core.errors import ConfigurationError
from ._frame_build import FrameBuilder, _plain

FORMAT = 1
_SAMPLES = 16
_OBJECTS_KEY = b"eventlab.object_columns"


@dataclass
class CacheManifest:
    """What a cache directory holds."""

    store: str
    """The events collection the cache copies (``database.collection``)."""
    through: int = 0
    """Every event at a position up to this one is in the cache."""
    parts: list[str] = field(default_factory=list)
    samples: dict[str, str] = field(default_factory=dict)
    """Event ids of some cached positions (position as text → id), to recognise the store."""

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **self.__dict__}, indent=1)


class FrameCache:
    """The cache directory of one store."""

    def __init__(self, directory: str | os.PathLike[str], store: str) -> None:
        if not isinstance(directory, str | os.PathLike):
            raise ConfigurationError(
                f"cache must be a directory path, got {type(directory).__name__}"
            )
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigurationError(f"cache {self.directory} exists and is not a directory")
        self.store = store

    @property
    def _manifest_path(self) -> Path:
        return self.directory / "manifest.json"

    def manifest(self) -> CacheManifest | None:
        """The manifest, or ``None`` for a new cache (or one of another store: it is replaced)."""
        try:
            data = json.loads(self._manifest_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cache {self.directory} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        if data.get("store") != self.store:
            return None
        return CacheManifest(
            store=data["store"],
            through=int(data["through"]),
            parts=list(data["parts"]),
            samples=dict(data["samples"]),
        )

    def load(self, manifest: CacheManifest, into: FrameBuilder) -> bool:
        """Every cached event into ``into``; ``False`` when a part is missing or unreadable."""
        for part in manifest.parts:
            try:
                table = pq.read_table(self.directory / part)
            except (OSError, pa.ArrowException):
                return False
            names = object_columns(table)
            objects = {name: _decoded(table[name]) for name in names}
            into.add_table(table.drop_columns(names).replace_schema_metadata(None), objects)
        return True

    def clear(self) -> None:
        if self._manifest_path.exists():
            self._manifest_path.unlink()
        for part in self.directory.glob("part-*.parquet"):
            part.unlink()

    def append(
        self, manifest: CacheManifest, table: pa.Table, objects: dict[str, list[Any]], through: int
    ) -> CacheManifest:
        """Write the events of ``(manifest.through, through]`` as one more part."""
        self.directory.mkdir(parents=True, exist_ok=True)
        parts = list(manifest.parts)
        if table.num_rows:
            name = f"part-{manifest.through + 1:012d}-{through:012d}.parquet"
            _write_part(self.directory / name, table, objects)
            parts.append(name)
        samples = dict(manifest.samples)
        positions = table["position"].to_pylist() if table.num_rows else []
        ids = table["event_id"].to_pylist() if table.num_rows else []
        if positions:
            step = max(1, len(positions) // _SAMPLES)
            for index in {0, len(positions) - 1, *range(0, len(positions), step)}:
                samples[str(positions[index])] = ids[index]
        if len(samples) > 4 * _SAMPLES:  # keep the first, the last and an even spread
            keys = sorted(samples, key=int)
            keep = set(keys[:: max(1, len(keys) // _SAMPLES)]) | {keys[0], keys[-1]}
            samples = {k: samples[k] for k in keys if k in keep}
        updated = CacheManifest(self.store, through, parts, samples)
        # Written last and atomically: a crash leaves the previous manifest, whose parts are
        # all there (an orphaned part is overwritten by the next refresh of that range).
        temporary = self._manifest_path.with_suffix(".tmp")
        temporary.write_text(updated.to_json())
        temporary.replace(self._manifest_path)
        return updated


def _write_part(path: Path, table: pa.Table, objects: dict[str, list[Any]]) -> None:
    """Arrow columns as they are; columns of Python objects (lists, dicts, mixed kinds) as
    BSON, decoded again by the same codec that read them (nothing is coerced)."""
    for name, values in objects.items():
        encoded = [
            None if v is None else bson.encode({"v": v}, codec_options=CODEC_OPTIONS)
            for v in values
        ]
        table = table.append_column(name, pa.array(encoded, pa.binary()))
    metadata = {_OBJECTS_KEY: json.dumps(sorted(objects)).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    pq.write_table(table, path)


def object_columns(table: pa.Table) -> list[str]:
    """The columns of a cached table that hold BSON-encoded Python objects."""
    raw = (table.schema.metadata or {}).get(_OBJECTS_KEY)
    return [] if raw is None else list(json.loads(raw))


def _decoded(column: pa.ChunkedArray) -> list[Any]:
    return [
        None if v is None else _plain(bson.decode(v, codec_options=CODEC_OPTIONS)["v"])
        for v in column.to_pylist()
    ]
