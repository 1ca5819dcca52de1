"""A local Parquet copy of a store's log, refreshed by reading only what came after it, and
never served wrong.

The cache is a directory: ``manifest.json`` and one Parquet part per refresh. Each part holds
the events of a range of positions the log had **settled** when it was read (with
``preallocated`` positions, up to the first position still open: a hole that may yet be
filled, the subscriptions' rule), so a refresh never misses a late commit and never reads an
event twice.

What is checked on every open, before anything is served:

* the manifest carries a SHA-256 of its own contents, and each part's SHA-256, row count and
  position range; a part is hashed as read, so a flipped bit, a truncated, swapped or missing
  part is found before its rows are used;
* the manifest must agree with itself (:meth:`CacheManifest.contradiction`): parts that
  follow each other from position 0, ending where the manifest ends, named as the cache names
  them (plain file names in the directory), each with a possible row count;
* the manifest names the store's **incarnation** (:meth:`~eventlab.ports.DocumentLog.
  incarnation`): a store dropped, replaced or restored under the cache is read again from the
  start, even when its event ids are the same;
* the manifest names the store's **rewrite generation**, which a scavenge moves on when it
  removes events (and which is new on every read while one is under way, or after one was
  killed half-way, until a scavenge completes): a copy holding events a scavenge removed is
  read again from the start.

A failed check is not an error: the cache keeps the parts before the first bad one, reads the
rest from the store again, and its one line says what it rebuilt and why. Refreshers of one
directory take a lock file in turn (processes and tasks alike), and every file is written
under a unique temporary name and renamed into place, the manifest last: a crash leaves the
previous, complete copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import AsyncFileLock

from .._core.bson_values import CODEC_OPTIONS, to_bson_value
from .._core.errors import CacheError, ConfigurationError
from ._frame_values import _plain

FORMAT = 3
MANIFEST = "manifest.json"
LOCK = ".eventlab-cache.lock"
_TEMPORARY = ".eventlab-tmp"
_OBJECTS_KEY = b"eventlab.object_columns"
_PART_NAME = re.compile(r"part-(?P<first>[0-9]{12})-[0-9]{12}-[0-9a-f]{8}\.parquet")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class CachedPart:
    """One Parquet file of the cache: the events at positions ``(after, through]``."""

    name: str
    after: int
    through: int
    rows: int
    sha256: str


@dataclass
class CacheManifest:
    """What a cache directory holds."""

    store: str
    """The events collection the cache copies (``database.collection``)."""
    incarnation: str
    """The store's incarnation when the cache was made (see the module doc)."""
    rewritten: str = "0"
    """The store's rewrite generation when the cache was last refreshed (see the module doc)."""
    through: int = 0
    """Every event at a position up to this one is in the cache."""
    parts: list[CachedPart] = field(default_factory=list)

    def to_json(self) -> str:
        body = {"format": FORMAT, **asdict(self)}
        return json.dumps({"checksum": _checksum(body), "body": body}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> CacheManifest:
        """The manifest ``text`` holds; :class:`_Unusable` when it fails its checksum."""
        try:
            data = json.loads(text)
            body = data["body"]
            if data["checksum"] != _checksum(body):
                raise _Unusable("its manifest failed its checksum")
            if body["format"] != FORMAT:
                raise _Unusable("it was written in another format")
            manifest = cls(
                store=str(body["store"]),
                incarnation=str(body["incarnation"]),
                rewritten=str(body["rewritten"]),
                through=body["through"],
                parts=[CachedPart(**part) for part in body["parts"]],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise _Unusable("its manifest is unreadable") from exc
        contradiction = manifest.contradiction()
        if contradiction is not None:
            raise _Unusable(f"its manifest contradicts itself ({contradiction})")
        return manifest

    def contradiction(self) -> str | None:
        """What makes the manifest's contents impossible, ``None`` when they agree: the parts
        follow each other from position 0 without a gap or an overlap (a refresh that read no
        event extends the last part's range), the manifest ends where its last part ends
        (with no part: at 0), each part holds at least one and at most as many events as its
        range has positions, and is named as the cache names parts, a plain file name in the
        directory."""
        if not _is_count(self.through):
            return "its end is not a position"
        end, names = 0, set()
        for part in self.parts:
            counts = (part.after, part.through, part.rows)
            if not all(_is_count(value) for value in counts):
                return f"part {str(part.name)[:80]!r} has a range or a count that is no number"
            named = _PART_NAME.fullmatch(part.name) if isinstance(part.name, str) else None
            if named is None or part.name in names:
                return f"a part is named {str(part.name)[:80]!r}"
            names.add(part.name)
            if part.after != end or int(named["first"]) != part.after + 1:
                return f"part {part.name} starts after {part.after:,}, not {end:,}"
            if not 0 < part.rows <= part.through - part.after:
                return f"part {part.name} holds {part.rows:,} events in its range"
            if not isinstance(part.sha256, str) or not _SHA256.fullmatch(part.sha256):
                return f"part {part.name} has no SHA-256"
            end = part.through
        if self.through != end:
            return f"it ends at {self.through:,}, its last part at {end:,}"
        return None


@dataclass
class OpenedCache:
    """What :meth:`FrameCache.open` found good, and what it dropped."""

    manifest: CacheManifest
    tables: list[tuple[pa.Table, dict[str, list[Any]]]]
    rows: int
    rebuilt: str | None = None
    """Why the cache is rebuilt from ``manifest.through`` (``None``: nothing was wrong)."""


class _Unusable(Exception):
    """A cache file failed a check (private: the cache rebuilds and says why)."""


class FrameCache:
    """The cache directory of one store."""

    def __init__(self, directory: str | os.PathLike[str], store: str) -> None:
        if not isinstance(directory, str | os.PathLike):
            raise ConfigurationError(
                f"cache must be a directory path, got {type(directory).__name__}"
            )
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise CacheError(f"cache {self.directory} exists and is not a directory")
        self.store = store

    def locked(self) -> AsyncFileLock:
        """The directory's lock: one refresher at a time, across processes."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cache {self.directory} cannot be created: {exc.strerror}") from exc
        return AsyncFileLock(self.directory / LOCK)

    def open(self, incarnation: str, head: int, rewritten: str = "0") -> OpenedCache:
        """The verified contents of the cache (under the lock). Files no manifest names
        (left by a crash) are removed."""
        empty = CacheManifest(self.store, incarnation, rewritten)
        try:
            manifest = self._manifest(incarnation, head, rewritten)
        except _Unusable as exc:
            self._remove_unlisted(set())
            return OpenedCache(empty, [], 0, str(exc))
        if manifest is None:
            self._remove_unlisted(set())
            return OpenedCache(empty, [], 0)
        opened = OpenedCache(CacheManifest(self.store, incarnation, rewritten), [], 0)
        for part in manifest.parts:
            try:
                table = self._verified(part)
            except _Unusable as exc:
                opened.rebuilt = f"part {part.name} {exc}"
                opened.manifest.through = part.after
                break
            opened.tables.append(_with_objects(table))
            opened.manifest.parts.append(part)
            opened.rows += part.rows
        else:
            opened.manifest.through = manifest.through
        self._remove_unlisted({part.name for part in opened.manifest.parts})
        return opened

    def _manifest(self, incarnation: str, head: int, rewritten: str) -> CacheManifest | None:
        try:
            text = (self.directory / MANIFEST).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(f"cache {self.directory} is unreadable: {exc.strerror}") from exc
        manifest = CacheManifest.from_json(text)
        if manifest.store != self.store:
            raise _Unusable(f"it held another store ({manifest.store[:100]})")
        if manifest.incarnation != incarnation:
            raise _Unusable("the store was dropped, replaced or restored since it was made")
        if manifest.rewritten != rewritten:
            raise _Unusable("a scavenge removed events since it was made")
        if head < manifest.through:
            raise _Unusable(
                f"the store's head ({head:,}) is behind it ({manifest.through:,}): the store "
                "was replaced"
            )
        return manifest

    def _verified(self, part: CachedPart) -> pa.Table:
        try:
            data = (self.directory / part.name).read_bytes()
        except FileNotFoundError as exc:
            raise _Unusable("is missing") from exc
        except IsADirectoryError as exc:
            raise _Unusable("is a directory, not a file") from exc
        except OSError as exc:
            raise CacheError(f"cache {self.directory}: {part.name}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != part.sha256:
            raise _Unusable("failed its checksum")
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as exc:  # a writer's bug, not a flipped bit
            raise _Unusable("is not a Parquet file eventlab can read") from exc
        positions = table["position"]
        ordered = (
            len(positions) < 2
            or pc.all(
                pc.greater(positions.combine_chunks()[1:], positions.combine_chunks()[:-1])
            ).as_py()
        )
        if (
            table.num_rows != part.rows
            or not ordered
            or (part.rows and not part.after < pc.min(positions).as_py() <= part.through)
            or (part.rows and pc.max(positions).as_py() > part.through)
        ):
            raise _Unusable("holds other positions than its manifest says")
        return table

    def append(
        self, manifest: CacheManifest, table: pa.Table, objects: dict[str, list[Any]], through: int
    ) -> CacheManifest:
        """Write the events of ``(manifest.through, through]`` as one more part, then the
        manifest that names it (under the lock). No event there: the last part's range is
        extended (with no part, the cache stays at 0)."""
        parts = list(manifest.parts)
        if table.num_rows:
            name = f"part-{manifest.through + 1:012d}-{through:012d}-{uuid.uuid4().hex[:8]}.parquet"
            data = _part_bytes(table, objects)
            self._write(name, data)
            digest = hashlib.sha256(data).hexdigest()
            parts.append(CachedPart(name, manifest.through, through, table.num_rows, digest))
        elif parts:
            last = parts[-1]
            parts[-1] = CachedPart(last.name, last.after, through, last.rows, last.sha256)
        else:
            through = 0
        updated = CacheManifest(
            self.store, manifest.incarnation, manifest.rewritten, through, parts
        )
        self._write(MANIFEST, updated.to_json().encode())
        return updated

    def _write(self, name: str, data: bytes) -> None:
        """``data`` under a unique temporary name, made durable, then renamed into place: a
        reader or a crash sees the old file or the new one, never part of one."""
        temporary = self.directory / f".{name}.{uuid.uuid4().hex}{_TEMPORARY}"
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise CacheError(
                f"cache {self.directory}: cannot write {name}: {exc.strerror}"
            ) from exc

    def _remove_unlisted(self, keep: set[str]) -> None:
        """Parts no manifest names and temporary files (a crashed or refused refresh)."""
        found = [*self.directory.glob("part-*.parquet"), *self.directory.glob(f"*{_TEMPORARY}")]
        for path in found:
            # The cache writes files only: a directory put there in a part's place is left
            # alone (no manifest names it again: a new part has a new name).
            if path.name not in keep and not path.is_dir():
                path.unlink(missing_ok=True)
        if not keep:
            (self.directory / MANIFEST).unlink(missing_ok=True)


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _checksum(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _part_bytes(table: pa.Table, objects: dict[str, list[Any]]) -> bytes:
    """Arrow columns as they are; columns of Python objects (lists, dicts, mixed kinds) as
    BSON, decoded again by the same codec that read them (nothing is coerced)."""
    for name, values in objects.items():
        encoded = [
            None
            if v is None
            # to_bson_value: the frame holds Python's decimals, which BSON stores as Decimal128
            else bson.encode({"v": to_bson_value(v, name)}, codec_options=CODEC_OPTIONS)
            for v in values
        ]
        table = table.append_column(name, pa.array(encoded, pa.binary()))
    metadata = {_OBJECTS_KEY: json.dumps(sorted(objects)).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def _with_objects(table: pa.Table) -> tuple[pa.Table, dict[str, list[Any]]]:
    names = object_columns(table)
    objects = {name: _decoded(table[name]) for name in names}
    return table.drop_columns(names).replace_schema_metadata(None), objects


def object_columns(table: pa.Table) -> list[str]:
    """The columns of a cached table that hold BSON-encoded Python objects."""
    raw = (table.schema.metadata or {}).get(_OBJECTS_KEY)
    return [] if raw is None else list(json.loads(raw))


def _decoded(column: pa.ChunkedArray) -> list[Any]:
    return [
        None if v is None else _plain(bson.decode(v, codec_options=CODEC_OPTIONS)["v"])
        for v in column.to_pylist()
    ]
