"""Stored documents → columns: one Arrow table per page, one pandas frame at the end.

Each page of documents is flattened into per-column lists and turned into Arrow arrays at
once, so a frame holds the Arrow table of the pages read so far plus the Python objects of one
page. A column Arrow cannot type (values of several kinds, lists, nested dicts kept whole)
stays a column of Python objects, so nothing is lost or coerced.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from .._core.bson_values import decimal128_to_decimal
from .._core.stored_batch import StoredBatch
from ._frame_values import (
    _TIME,
    _ids_as_text,
    _plain,
    _python,
    _typed,
    decimal_type,
)

ENVELOPE_COLUMNS = [
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "event_id",
]
_INTS = ("position", "version", "schema_version")
_CATEGORIES = ("aggregate_type", "event_type")


class FrameBuilder:
    """Collects pages of stored documents; :meth:`frame` assembles the DataFrame."""

    def __init__(self, *, flatten: bool = True) -> None:
        self._flatten = flatten
        self._tables: list[pa.Table] = []
        self._objects: dict[str, list[tuple[int, list[Any]]]] = {}
        self._names: dict[str, dict[str, str]] = {}
        self._order: dict[str, None] = {}
        self.rows = 0
        self.bulk_pages = 0
        """Pages read in bulk from their BSON bytes (``_bson_frame``)."""
        self.json_columns: set[str] = set()
        """The columns :meth:`arrow` gave as Extended JSON text (values of several kinds)."""

    def add(self, documents: Iterable[dict[str, Any]], *, as_bson_stores: bool = False) -> int:
        """Take one page of event documents; returns the number of events in it.

        ``as_bson_stores``: the documents were decoded as BSON stores them (naive datetimes
        are UTC; UUIDs ``Binary``, subtype 4: what a :class:`~eventlab.ports.DocumentLog`
        hands out), so that neither is made into a Python object per value."""
        if isinstance(documents, StoredBatch) and self._flatten:
            from ._bson_frame import bulk_columns

            bulk = bulk_columns(documents.batch, documents.kept)
            if bulk is not None:
                self.bulk_pages += 1
                return self._add_columns(*bulk)
            as_bson_stores = True
        docs = list(documents)
        n = len(docs)
        if not n:
            return 0
        arrays: dict[str, pa.Array] = {
            "position": pa.array([d.get("position") for d in docs], pa.int64()),
            "aggregate_id": pa.array([d["aggregate_id"] for d in docs], pa.string()),
            "aggregate_type": pa.array([d["aggregate_type"] for d in docs], pa.string()),
            "version": pa.array([d["version"] for d in docs], pa.int64()),
            "event_type": pa.array([d["event_type"] for d in docs], pa.string()),
            "schema_version": pa.array([d.get("schema_version", 1) for d in docs], pa.int64()),
            "occurred_at": pa.array([d["occurred_at"] for d in docs], _TIME),
            "recorded_at": pa.array([d.get("recorded_at") for d in docs], _TIME),
            "event_id": _ids_as_text([d["_id"] for d in docs]),
        }
        columns: dict[str, pa.Array | list[Any]] = {}
        for name, values in self._fields(docs).items():
            array = _typed(values, naive_is_utc=as_bson_stores)
            if array is None:
                columns[name] = [_python(v) for v in values] if as_bson_stores else values
            else:
                columns[name] = array
        return self._add_columns(arrays, columns)

    def _add_columns(
        self, arrays: dict[str, pa.Array], columns: dict[str, pa.Array | list[Any]]
    ) -> int:
        """Take one page as the envelope's arrays and the fields' columns (Arrow arrays, or
        lists of Python objects)."""
        n = len(arrays["position"])
        if not n:
            return 0
        arrays = dict(arrays)
        for name, column in columns.items():
            self._order.setdefault(name, None)
            if isinstance(column, list):
                self._objects.setdefault(name, []).append((self.rows, column))
            else:
                arrays[name] = column
        self._tables.append(pa.table(arrays))
        self.rows += n
        return n

    def add_table(self, table: pa.Table, objects: dict[str, list[Any]]) -> int:
        """Take rows already built (a cached part): Arrow columns and columns of objects."""
        for name in (*table.column_names, *objects):
            if name not in ENVELOPE_COLUMNS:
                self._order.setdefault(name, None)
        for name, values in objects.items():
            self._objects.setdefault(name, []).append((self.rows, values))
        self._tables.append(table)
        self.rows += table.num_rows
        rows: int = table.num_rows
        return rows

    def settled_part(self, through: int) -> tuple[pa.Table, dict[str, list[Any]]]:
        """The rows at positions up to ``through``, sorted: what a cache may keep."""
        table = self.table()
        objects = self._object_columns()
        order = pc.sort_indices(table["position"])
        table = table.take(order)
        rows = order.to_pylist()
        objects = {name: [column[i] for i in rows] for name, column in objects.items()}
        keep = pc.sum(pc.less_equal(table["position"], through)).as_py() or 0
        return table.slice(0, keep), {name: v[:keep] for name, v in objects.items()}

    def _object_columns(self) -> dict[str, list[Any]]:
        columns = {}
        for name, chunks in self._objects.items():
            column: list[Any] = [None] * self.rows
            for start, values in chunks:
                column[start : start + len(values)] = values
            columns[name] = column
        return columns

    def _fields(self, docs: list[dict[str, Any]]) -> dict[str, list[Any]]:
        n = len(docs)
        # DCB events carry tags (eventlab.dcb): a column of lists, present once any has them.
        tags = [list(d["tags"]) if "tags" in d else None for d in docs]
        tagged = {"tags": tags} if any(t is not None for t in tags) else {}
        if not self._flatten:
            return {
                **tagged,
                "metadata": [_plain(d.get("metadata") or {}) for d in docs],
                "payload": [_plain(d.get("payload") or {}) for d in docs],
            }
        columns: dict[str, list[Any]] = dict(tagged)
        names = self._names
        for row, doc in enumerate(docs):
            metadata = doc.get("metadata")
            if metadata:
                _flatten_into(columns, names, "metadata", metadata, row, n)
            _flatten_into(columns, names, "payload", doc.get("payload") or {}, row, n)
        return columns

    def table(self) -> pa.Table:
        """The Arrow columns (object columns left out: see :meth:`frame`)."""
        self._tables = _unified(self._tables, self._objects)
        return pa.concat_tables(self._tables or [_empty()], promote_options="default")

    def frame(self) -> pd.DataFrame:
        """The DataFrame, in position order (a scan reads in the collection's order). Once:
        the builder hands its Arrow memory over to the frame."""
        table = self.table()
        self._tables = []  # the table is the only holder now: its memory goes as it converts
        order = _sort_order(table)
        if order is not None:
            table = table.take(order)
        frame = arrow_to_frame(table)
        del table
        for name, column in self._object_columns().items():
            if order is not None:
                column = [column[i] for i in order.to_pylist()]
            frame[name] = pd.Series(column, dtype=object, index=frame.index)
        # Sorted, not first-seen: the same selection has the same columns however it was read
        # (whole, filtered, through a cache).
        tags = ["tags"] if "tags" in self._order else []
        metadata = sorted(n for n in self._order if n.startswith("metadata"))
        payload = sorted(n for n in self._order if n.startswith("payload"))
        return frame[[*ENVELOPE_COLUMNS, *tags, *metadata, *payload]]

    def arrow(self) -> pa.Table:
        """The rows as one Arrow table in position order, in the frame's column order (for
        Polars and the flat export). Columns of Python objects become Arrow columns where
        Arrow holds their values, else MongoDB Extended JSON text. Once, like :meth:`frame`."""
        table = self.table()
        self._tables = []
        order = _sort_order(table)
        if order is not None:
            table = table.take(order)
        rows = None if order is None else order.to_pylist()
        for name, column in self._object_columns().items():
            if rows is not None:
                column = [column[i] for i in rows]
            array = _arrow_or_json(column)
            if pa.types.is_string(array.type) and not _all_text(column):
                self.json_columns.add(name)
            table = table.append_column(name, array)
        tags = ["tags"] if "tags" in self._order else []
        metadata = sorted(n for n in self._order if n.startswith("metadata"))
        payload = sorted(n for n in self._order if n.startswith("payload"))
        return table.select([*ENVELOPE_COLUMNS, *tags, *metadata, *payload])


def _arrow_or_json(values: list[Any]) -> pa.Array:
    """Values Arrow holds as they are (lists of one kind, structs), else Extended JSON; lists
    of UUIDs as lists of their text, as UUIDs are everywhere else."""
    if all(v is None or (type(v) is list and all(type(i) is uuid.UUID for i in v)) for v in values):
        values = [None if v is None else [str(i) for i in v] for v in values]
    array = None
    if _one_kind_each(values):  # else Arrow would convert some to the others' kind, or fail
        try:
            array = pa.array(values)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
            TypeError,  # a decimal infinity among finite decimals
            ValueError,
        ):
            array = None
    if array is not None and _readers_take(array.type):
        return array
    from ._jsonl import extended_json

    return pa.array([None if v is None else extended_json(v) for v in values], pa.string())


def _one_kind_each(values: list[Any]) -> bool:
    """Whether ``values`` hold one kind of value at each place (the column, a list's items, a
    struct's field): Arrow types each place by its first value and converts the others to it
    without a word (a time then the int 3 gives 1970-01-01T00:00:00.000003, bytes among text
    text, a bool among floats 1.0). Ints among floats are one kind while a float holds them
    exactly."""
    kinds: dict[tuple[str, ...], set[type]] = {}
    pending: list[tuple[tuple[str, ...], Any]] = [((), v) for v in values]
    while pending:
        place, value = pending.pop()
        if value is None:
            continue
        kind = _KIND.get(type(value), type(value))
        if kind is int and abs(value) > 2**53:
            kind = _BIG_INT
        seen = kinds.setdefault(place, set())
        seen.add(kind)
        if len(seen) > 1 and seen != {int, float}:
            return False
        if kind is list:
            pending.extend(((*place, "[]"), item) for item in value)
        elif kind is dict:
            pending.extend(((*place, key), item) for key, item in value.items())
    return True


class _BigInt:
    """The kind of an int a float does not hold exactly."""


_BIG_INT: type = _BigInt
_KIND: dict[type, type] = {Int64: int, Binary: bytes}


def _all_text(values: list[Any]) -> bool:
    """Whether ``values`` are text only (a column Arrow takes as it is, not JSON)."""
    return all(v is None or type(v) is str for v in values)


def _readers_take(kind: pa.DataType) -> bool:
    """Whether the readers of a frame's Arrow form take ``kind``: not a struct without fields
    (``{}``), which Parquet cannot store, nor a 256-bit decimal."""
    if pa.types.is_decimal256(kind):  # beyond 38 digits: few readers take it (Polars does not)
        return False
    if pa.types.is_struct(kind):
        fields = [kind.field(i).type for i in range(kind.num_fields)]
        return bool(fields) and all(_readers_take(f) for f in fields)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _readers_take(kind.value_type)
    return True


def arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table of events as pandas: nullable ints and bools, categories for type
    names, decimals kept exact (Arrow-backed), UTC times."""
    # Lists become Python lists (pandas would make each a NumPy array, and a list dtype
    # that pd.read_parquet cannot read back); they stay Arrow lists in the cache's files.
    lists = [f.name for f in table.schema if pa.types.is_list(f.type)]
    # split_blocks and self_destruct hand each Arrow column's memory back as it is converted,
    # so the peak stays near one copy of the frame instead of two.
    frame: pd.DataFrame = table.drop_columns(lists).to_pandas(
        types_mapper=_pandas_type, date_as_object=False, split_blocks=True, self_destruct=True
    )
    for name in lists:
        frame[name] = pd.Series(table[name].to_pylist(), dtype=object, index=frame.index)
    for name in _CATEGORIES:
        if name in frame:
            frame[name] = frame[name].astype("category")
    return frame


def _pandas_type(arrow_type: pa.DataType) -> Any:
    if pa.types.is_decimal(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return _PANDAS_TYPES.get(arrow_type)


def _sort_order(table: pa.Table) -> pa.Array | None:
    """The order that sorts ``table`` by position, or ``None`` when it already is."""
    positions = table["position"].combine_chunks()
    if len(positions) < 2:
        return None
    ordered = pc.all(pc.greater(positions[1:], positions[:-1])).as_py()
    return None if ordered else pc.sort_indices(positions)


_PANDAS_TYPES = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def _empty() -> pa.Table:
    types = {n: pa.int64() for n in _INTS} | {n: _TIME for n in ("occurred_at", "recorded_at")}
    return pa.table({n: pa.array([], types.get(n, pa.string())) for n in ENVELOPE_COLUMNS})


def _unified(
    tables: list[pa.Table], objects: dict[str, list[tuple[int, list[Any]]]]
) -> list[pa.Table]:
    """Pages whose columns disagree: a column of several Arrow types is cast to one type
    holding every value of all of them, where there is one; otherwise, and where some page
    holds the column as Python objects, it becomes a column of objects in every page."""
    kinds: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    # A column some page holds as objects is objects in every page (null-typed pages too).
    clashes = {name for table in tables for name in table.column_names if name in objects}
    for name, types in kinds.items():
        if name in clashes or len(types) < 2:
            continue
        common = _common_type(types, [t[name] for t in tables if name in t.column_names])
        if common is None:
            clashes.add(name)
            continue
        try:
            tables = [
                t.set_column(t.column_names.index(name), name, cast_exact(t[name], common))
                if name in t.column_names
                else t
                for t in tables
            ]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # an int beyond a float's 53 bits
            clashes.add(name)
    if not clashes:
        return tables
    start = 0
    result = []
    for table in tables:
        for name in clashes & set(table.column_names):
            objects.setdefault(name, []).append((start, table[name].to_pylist()))
            table = table.drop_columns([name])
        result.append(table)
        start += table.num_rows
    for chunks in objects.values():
        chunks.sort(key=lambda chunk: chunk[0])
    return result


def cast_exact(column: Any, kind: pa.DataType) -> Any:
    """``column`` cast to ``kind``, every value kept exactly or ``ArrowInvalid``. Ints become
    decimals through the widest decimal: Arrow asks an int's cast for room for any int (19
    digits), not for the values it holds."""
    if pa.types.is_integer(column.type) and pa.types.is_decimal(kind):
        column = column.cast(pa.decimal128(38, kind.scale))
    return column.cast(kind)


def _common_type(
    types: set[pa.DataType], columns: list[pa.ChunkedArray] | None = None
) -> pa.DataType | None:
    """The type that holds every value of ``types`` exactly: decimals of several scales (and
    ints among them) as the largest scale with the digits the values need before the point
    (``columns``, the values, when given; else the types' room), ints with floats as floats;
    ``None`` when there is none."""
    decimals = {t for t in types if pa.types.is_decimal(t)}
    if decimals and types - decimals <= {pa.int64()}:
        # Ints among decimals are decimals, as one page of both gives them (``_typed``).
        scale = max(t.scale for t in decimals)
        if columns is None:
            ints = 19 if pa.int64() in types else 0
            digits = max(ints, *(t.precision - t.scale for t in decimals))
        else:
            digits = max((_whole_digits(c) for c in columns), default=0)
        try:
            return decimal_type(digits, scale)
        except pa.ArrowInvalid:  # 30 digits before the point in one part, 10 after in another
            return None
    if types <= {pa.int64(), pa.float64()}:
        return pa.float64()
    if all(pa.types.is_list(t) for t in types):
        items = {t.value_type for t in types if not pa.types.is_null(t.value_type)}
        if len(items) == 1:
            return pa.list_(items.pop())
        if items <= {pa.int64(), pa.float64()}:
            return pa.list_(pa.float64())
    return None


def _whole_digits(column: pa.ChunkedArray) -> int:
    """The digits before the point of a decimal (or int) column's largest value (as Arrow
    infers a column's precision from ``decimal.Decimal`` values)."""
    extremes = pc.min_max(column).as_py()
    values = [abs(v) for v in (extremes["min"], extremes["max"]) if v is not None]
    return max((len(str(int(v))) if v >= 1 else 0 for v in values), default=0)


def _flatten_into(
    columns: dict[str, list[Any]],
    names: dict[str, dict[str, str]],
    prefix: str,
    value: dict[str, Any],
    row: int,
    n: int,
) -> None:
    # Dotted column names are built once per (prefix, key), not once per event.
    known = names.get(prefix)
    if known is None:
        known = names[prefix] = {}
    for key, item in value.items():
        name = known.get(key)
        if name is None:
            # A dot inside a key is escaped, so that {"a": {"b": 1}} and {"a.b": 2} never
            # share a column (events_from_frame splits on unescaped dots only).
            safe = (
                key.replace("\\", "\\\\").replace(".", "\\.") if "." in key or "\\" in key else key
            )
            name = known[key] = f"{prefix}.{safe}"
        kind = type(item)
        if kind is dict and item:
            _flatten_into(columns, names, name, item, row, n)
            continue
        if kind is Decimal128:
            item = decimal128_to_decimal(item)
        elif kind is list or kind is dict:
            item = _plain(item)
        column = columns.get(name)
        if column is None:
            column = columns[name] = [None] * n
        column[row] = item
