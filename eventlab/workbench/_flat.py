"""The flat export: a store's events as a Hive-partitioned Parquet dataset, in the frame's
typed columns, that DuckDB, Polars, pyarrow.dataset and Spark read as they are.

``directory/event_type=OrderPaid/day=2026-03-01/part-<first>-<last>-<id>-0.parquet``: one
row per event with the frame's columns (exact decimals, UTC timestamps, ids as text, lists;
values Arrow cannot type as Extended JSON text), ``day`` the UTC date of the selection's
time. ``_eventlab_flat.json`` (ignored by those readers: its name starts with ``_``) records
the store, its incarnation, the selection and the last position exported; the next export of
the same selection reads only what came after it and adds files, with the types and values one
export of all of them gives (``_conformed``). A first export writes the manifest before any
file moves in; files are written outside the dataset and moved in, the manifest naming them
last, under a lock; files no manifest names (a crash) are removed by the next export.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock

from .._core.errors import CacheError, ConfigurationError, ConflictError
from ..ports import EventStore
from ._frame_build import FrameBuilder, _common_type, cast_exact
from ._frame_query import FrameQuery, apply_arrow
from ._frames import _incarnation, _read_into, _store_name, say
from ._frames import _rewritten as _rewrite_generation
from ._personal import personal_of, redact_table

MANIFEST = "_eventlab_flat.json"
FORMAT = 1
PARTITION_COLUMNS = ("event_type", "day", "aggregate_type")
_PARTITION_TYPES = {"event_type": pa.string(), "aggregate_type": pa.string(), "day": pa.date32()}


@dataclass(frozen=True, slots=True)
class FlatExport:
    """What one :func:`export_flat` call did."""

    directory: Path
    after: int
    """The dataset held the selected events up to this position before the call."""
    through: int
    """It holds them up to this one now."""
    written: int
    """Events this call added."""
    files: int
    """Parquet files this call added."""


async def export_flat(
    store: EventStore,
    directory: str | os.PathLike[str],
    *,
    streams: str | Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    time: str = "recorded_at",
    partition_by: Iterable[str] = ("event_type", "day"),
    progress: bool | None = None,
) -> FlatExport:
    """Export the selected events of ``store`` to ``directory`` as a Hive-partitioned Parquet
    dataset (module doc), or add to it the events after its last export of the same
    selection. The directory's parent must exist.

    :param partition_by: columns among ``event_type``, ``day`` (the UTC date of ``time``) and
        ``aggregate_type``; ``()`` for none.
    Filters are :func:`read_frame`'s; the selection is part of the dataset: another
    selection needs another directory.
    """
    query = FrameQuery.of(
        streams=streams, event_types=event_types, since=since, until=until, time=time
    )
    partitions = _partitions(partition_by)
    target = _directory(directory)
    selection = _selection(query, partitions)
    with FileLock(target / ".eventlab-flat.lock"):
        store_is = (_store_name(store), await _incarnation(store), await _rewrite_generation(store))
        manifest = _manifest(target, store_is, selection)
        _remove_stale_staging(target)
        if not (target / MANIFEST).exists():
            # Before any file moves in: a directory holding it is an export of eventlab, so
            # the next export removes the files of one killed before its manifest named them.
            _write_manifest(target, manifest)
        head = await store.log.head()
        after = int(manifest["through"])
        builder = FrameBuilder()
        bounded = FrameQuery.of(
            streams=streams,
            event_types=event_types,
            since=since,
            until=until,
            time=time,
            after=after,
            through=head.position,
        )
        await _read_into(builder, store, bounded, head, head.position, progress)
        table = _with_day(apply_arrow(bounded, builder.arrow()), query.time)
        table = await redact_table(table, personal_of(store))
        files = _write(
            target, table, partitions, after, head.position, manifest, builder.json_columns
        )
        manifest["through"] = head.position
        _write_manifest(target, manifest)
    result = FlatExport(target, after, head.position, table.num_rows, len(files))
    added = (
        f"{table.num_rows:,} events of positions {after + 1:,}-{head.position:,} in "
        f"{len(files):,} files"
        if head.position > after
        else f"nothing after position {after:,}"
    )
    say(progress, f"flat export {target}: {added}")
    return result


def _remove_stale_staging(target: Path) -> None:
    """Remove the staging folders of exports of ``target`` that were killed (under the lock,
    no other export of it is writing one): ``.<name>.<12 hex>.staging`` beside it."""
    for path in target.parent.glob(f".{glob.escape(target.name)}.*.staging"):
        middle = path.name[len(target.name) + 2 : -len(".staging")]
        if len(middle) == 12 and all(c in "0123456789abcdef" for c in middle):
            shutil.rmtree(path, ignore_errors=True)


def _partitions(partition_by: Any) -> list[str]:
    if isinstance(partition_by, str | bytes) or not isinstance(partition_by, Iterable):
        raise ConfigurationError(
            f"partition_by must be column names, got {type(partition_by).__name__}"
        )
    names = list(partition_by)
    for name in names:
        if not isinstance(name, str) or name not in PARTITION_COLUMNS:
            raise ConfigurationError(
                f"partition_by takes {', '.join(PARTITION_COLUMNS)}, got {str(name)[:60]!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigurationError(f"partition_by names a column twice: {names}")
    return names


def _directory(directory: Any) -> Path:
    if not isinstance(directory, str | os.PathLike):
        raise ConfigurationError(
            f"the flat export needs a directory path, got {type(directory).__name__}"
        )
    path = Path(directory)
    if not path.parent.is_dir():
        raise CacheError(f"directory {path.parent} does not exist (nothing was written)")
    if path.exists() and not path.is_dir():
        raise CacheError(f"{path} exists and is not a directory (nothing was written)")
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise CacheError(f"{path} cannot be created: {exc.strerror}") from exc
    return path


def _selection(query: FrameQuery, partitions: list[str]) -> dict[str, Any]:
    return {
        "streams": None if query.streams is None else sorted(query.streams),
        "event_types": None if query.event_types is None else sorted(query.event_types),
        "since": None if query.since is None else query.since.isoformat(),
        "until": None if query.until is None else query.until.isoformat(),
        "time": query.time,
        "partition_by": partitions,
    }


def _manifest(
    target: Path, store_is: tuple[str, str, str], selection: dict[str, Any]
) -> dict[str, Any]:
    """The dataset's manifest (a new one for an empty directory), checked against this
    export; files it does not name are removed. ``store_is``: the store's name, incarnation
    and rewrite generation (which a scavenge that removed events has moved on)."""
    store, incarnation, rewritten = store_is
    path = target / MANIFEST
    if not path.exists():
        if any(target.iterdir()) and not _only_ours(target):
            raise CacheError(
                f"{target} holds files that are not a flat export of eventlab: export to a new "
                "or empty directory (nothing was written)"
            )
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "store": store,
            "incarnation": incarnation,
            "rewritten": rewritten,
            "selection": selection,
            "through": 0,
            "files": [],
            "schema": None,
        }
    else:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            known = manifest["format"] == FORMAT and isinstance(manifest["files"], list)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise CacheError(f"{path} is unreadable: {exc}") from exc
        if not known:
            raise CacheError(f"{path} was written in another format: export to a new directory")
        if manifest["store"] != store or manifest["incarnation"] != incarnation:
            raise ConflictError(
                f"{target} is an export of {manifest['store']} as it was before it was dropped, "
                "replaced or restored (or of another store): export to a new directory"
            )
        if manifest.get("rewritten") != rewritten:
            # Its files hold events the store no longer has: adding to them would serve both.
            raise ConflictError(
                f"{target} holds events a scavenge has removed from {store} since it was "
                "exported (or one is under way, or was stopped before it finished): export to "
                "a new directory"
            )
        if manifest["selection"] != selection:
            raise ConfigurationError(
                f"{target} was exported with another selection ({manifest['selection']}): "
                "export this one to another directory"
            )
    listed = set(manifest["files"])
    for part in target.rglob("part-*.parquet"):
        if part.relative_to(target).as_posix() not in listed:
            part.unlink()
    return manifest


def _only_ours(target: Path) -> bool:
    return all(p.name.startswith(".eventlab-flat") for p in target.iterdir())


def _with_day(table: pa.Table, time: str) -> pa.Table:
    return table.append_column("day", pc.cast(table[time], pa.date32()))


def _write(
    target: Path,
    table: pa.Table,
    partitions: list[str],
    after: int,
    through: int,
    manifest: dict[str, Any],
    json_columns: set[str],
) -> list[str]:
    """The rows as new files of the dataset: written beside it, then moved in."""
    if not table.num_rows:
        return []
    table = _conformed(target, table, manifest, json_columns)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.staging"
    name = f"part-{after + 1:012d}-{through:012d}-{uuid.uuid4().hex[:8]}"
    try:
        written = _write_partitions(staging, table, partitions, name)
        for relative in written:
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / relative, destination)
    except OSError as exc:
        raise CacheError(f"{target}: cannot write the export: {exc.strerror}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest["files"] = [*manifest["files"], *written]
    return written


def _conformed(
    target: Path, table: pa.Table, manifest: dict[str, Any], json_columns: set[str]
) -> pa.Table:
    """One type per column across the dataset's files, as Spark needs to read them together
    (its schema merging widens decimals' precision, nothing else), and the one a single export
    of the same events gives: a column whose values fit the type of the earlier files without
    changing kind takes it (ints in a float column, decimals of a smaller scale); one that
    needs a wider type (ints that became fractions, decimals of a larger scale) gets the type
    holding both, and the earlier files holding the column are rewritten in it; values of
    another kind (text after numbers, bools after ints, a time after text...) make the column
    Extended JSON text, the earlier files rewritten too. ``json_columns``: the columns of
    ``table`` that are Extended JSON text already. A column with no value in this export
    (Arrow's null type, which Spark reads as int) is not written. The types are recorded for
    the next export."""
    recorded: dict[str, str] = manifest.get("schema") or {}
    as_json: set[str] = set(manifest.get("json_columns") or [])
    columns, names = [], []
    for field in table.schema:
        column = table[field.name]
        was = recorded.get(field.name)
        if was is not None and pa.types.is_null(field.type):
            earlier = _known_type(was)
            if earlier is not None:
                column = column.cast(earlier)
        elif was is not None and (field.name in as_json or field.name in json_columns):
            if field.name not in json_columns:
                column = _as_json(column)
            if field.name not in as_json:
                _rewrite(target, manifest, field.name, None)
            json_columns = json_columns | {field.name}
        elif was is not None and was != str(field.type):
            column, is_json = _in_common_type(target, manifest, field.name, column, was)
            if is_json:
                json_columns = json_columns | {field.name}
        if pa.types.is_null(column.type):
            continue
        columns.append(column)
        names.append(field.name)
    table = pa.table(columns, names=names)
    manifest["schema"] = {**recorded, **{f.name: str(f.type) for f in table.schema}}
    manifest["json_columns"] = sorted(as_json | (json_columns & set(names)))
    return table


def _in_common_type(
    target: Path, manifest: dict[str, Any], name: str, column: pa.ChunkedArray, was: str
) -> tuple[pa.ChunkedArray, bool]:
    """``column`` in the earlier files' type if its values fit it without changing kind, else
    in the type holding both (the earlier files rewritten in it), else as Extended JSON text
    (the earlier files rewritten so too); and whether it is JSON text."""
    earlier = _known_type(was)
    if earlier is None:  # a type the export does not cast to (structs): kept as it is
        return column, False
    if _fits_without_changing_kind(column.type, earlier):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return column.cast(earlier), False
    olds = _earlier_columns(target, manifest, name)
    common = _common_type({earlier, column.type, *(c.type for c in olds)}, [column, *olds])
    if common is not None:
        try:
            widened = cast_exact(column, common)
            for old in olds:
                cast_exact(old, common)  # every earlier value fits too, or none is rewritten
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # an int beyond 53 bits
            common = None
        else:
            _rewrite(target, manifest, name, common)
            return widened, False
    _rewrite(target, manifest, name, None)
    return _as_json(column), True


def _fits_without_changing_kind(kind: pa.DataType, earlier: pa.DataType) -> bool:
    """Whether values of ``kind`` may take the earlier files' type as a single export would
    give it: decimals of another scale or precision, ints among floats."""
    if pa.types.is_decimal(kind) and pa.types.is_decimal(earlier):
        return True
    if pa.types.is_list(kind) and pa.types.is_list(earlier):
        return _fits_without_changing_kind(kind.value_type, earlier.value_type)
    return bool(kind == pa.int64() and earlier == pa.float64())


def _earlier_columns(target: Path, manifest: dict[str, Any], name: str) -> list[pa.ChunkedArray]:
    """The column ``name`` of each earlier file holding it."""
    found = []
    for part in manifest["files"]:
        path = target / part
        if name in pq.read_schema(path).names:
            found.append(pq.read_table(path, columns=[name], partitioning=None)[name])
    return found


def _as_json(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column's values as MongoDB Extended JSON text, as a single export writes a column of
    values of several kinds."""
    from ._jsonl import extended_json

    values = [None if v is None else extended_json(v) for v in column.to_pylist()]
    return pa.chunked_array([pa.array(values, pa.string())])


_JSON_FIELD = {b"eventlab": b"extended-json"}


def _rewrite(target: Path, manifest: dict[str, Any], name: str, kind: pa.DataType | None) -> None:
    """Rewrite the earlier files holding column ``name`` in ``kind`` (``None``: Extended JSON
    text)."""
    for part in manifest["files"]:
        _rewritten(target / part, name, kind)


def _rewritten(path: Path, name: str, kind: pa.DataType | None) -> None:
    """Rewrite one file of the dataset with its column ``name`` in ``kind`` (``None``:
    Extended JSON text), atomically."""
    schema = pq.read_schema(path)
    if name not in schema.names or schema.field(name).type == kind:
        return
    table = pq.read_table(path, partitioning=None)
    index = table.column_names.index(name)
    if kind is None:
        if schema.field(name).metadata == _JSON_FIELD:  # rewritten by an export killed since
            return
        field = pa.field(name, pa.string(), metadata=_JSON_FIELD)
        table = table.set_column(index, field, _as_json(table[name]))
    else:
        table = table.set_column(index, name, cast_exact(table[name], kind))
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def partition_segment(value: str) -> str:
    """A partition value as a directory name: ASCII characters other than letters, digits
    and ``-._~`` percent-encoded (``/``, ``=``, ``%``, spaces...), other characters as
    they are (UTF-8). Spark decodes each ``%XX`` as one character, so a UTF-8 character
    percent-encoded byte by byte would come back garbled; DuckDB, Polars and pyarrow read
    both forms."""
    return "".join(c if c in _UNRESERVED or ord(c) > 127 else f"%{ord(c):02X}" for c in value)


def _write_partitions(
    staging: Path, table: pa.Table, partitions: list[str], name: str
) -> list[str]:
    """One Parquet file per partition, under ``key=value`` folders (Hive's layout, the values
    escaped by :func:`partition_segment`); the files' paths relative to ``staging``."""
    if not partitions:
        staging.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, staging / f"{name}-0.parquet")
        return [f"{name}-0.parquet"]
    table = table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in partitions]))
    changes = np.zeros(max(table.num_rows - 1, 0), dtype=bool)
    for key in partitions:
        column = table[key].combine_chunks()
        differs = pc.fill_null(pc.not_equal(column[1:], column[:-1]), True)
        differs = pc.or_(differs, pc.xor(column[1:].is_null(), column[:-1].is_null()))
        changes |= differs.to_numpy(zero_copy_only=False)
    starts = [0, *(np.flatnonzero(changes) + 1).tolist()]
    ends = [*starts[1:], table.num_rows]
    written: list[str] = []
    for first, last in zip(starts, ends, strict=True):
        folder = "/".join(f"{key}={_segment(table[key][first].as_py())}" for key in partitions)
        relative = f"{folder}/{name}-{len(written)}.parquet"
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            table.slice(first, last - first).drop_columns(partitions), staging / relative
        )
        written.append(relative)
    return written


def _segment(value: Any) -> str:
    if value is None:
        return "__HIVE_DEFAULT_PARTITION__"  # what Hive, Spark and pyarrow read as null
    return partition_segment(str(value))


def _known_type(name: str | None) -> pa.DataType | None:
    """The type a recorded schema names, ``None`` for none or one not cast to (lists)."""
    if name is None:
        return None
    try:
        return _type_of(name)
    except ValueError:
        return None


def _type_of(name: str) -> pa.DataType:
    """The Arrow type a schema's text names (the types a frame's columns have)."""
    simple = {
        "int64": pa.int64(),
        "double": pa.float64(),
        "bool": pa.bool_(),
        "string": pa.string(),
        "null": pa.null(),
        "date32[day]": pa.date32(),
        "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
    }
    if name in simple:
        return simple[name]
    if name.startswith("list<item: ") and name.endswith(">"):
        return pa.list_(_type_of(name[len("list<item: ") : -1]))
    if name.startswith("decimal128("):
        precision, scale = name[len("decimal128(") : -1].split(",")
        return pa.decimal128(int(precision), int(scale))
    raise ValueError(f"no cast to {name}")


def _write_manifest(target: Path, manifest: dict[str, Any]) -> None:
    temporary = target / f".eventlab-flat.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(manifest, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target / MANIFEST)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CacheError(f"{target}: cannot write {MANIFEST}: {exc.strerror}") from exc
