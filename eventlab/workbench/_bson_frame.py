"""A page of stored documents as a frame's columns, read in bulk from their BSON bytes.

The same columns :class:`~._frame_build.FrameBuilder` makes of decoded documents (the
envelope, the flattened payload and metadata, tags), made from the walk of
:mod:`eventlab._core.bson_columns`: every value read in NumPy, none made a Python object but
the items of lists. Whatever is not read here exactly as the decoded path reads it (a field
of several kinds, a decimal beyond 18 digits, a binary that is not a UUID, a time outside
Python's range) makes the page fall back to the decoded path, whole.
"""

from __future__ import annotations

from typing import Any

import bson
import numpy as np
import pyarrow as pa

from .._core.bson_columns import (
    ARRAY,
    BINARY,
    BOOL,
    DATETIME,
    DECIMAL,
    DOUBLE,
    INT32,
    INT64,
    NULL,
    STRING,
    Batch,
    Piece,
    Unsupported,
    Walk,
)
from .._core.bson_values import AS_BSON_STORES
from ._frame_values import _TIME, _plain, _python, _typed, uuid_rows_text

_TOP = {
    "_id": "keep",
    "position": "keep",
    "aggregate_id": "keep",
    "aggregate_type": "keep",
    "version": "keep",
    "event_type": "keep",
    "schema_version": "keep",
    "occurred_at": "keep",
    "recorded_at": "keep",
    "tags": "keep",
    "metadata": "flatten",
    "payload": "flatten",
}
_ENVELOPE = {name for name, action in _TOP.items() if action == "keep"}
_DATETIME_MS = (-62_135_596_800_000, 253_402_300_799_999)  # Python's datetime range
_POW10 = np.array([10**i for i in range(20)], dtype=np.uint64)
_DIGITS = 18  # the decimal columns read here: up to 18 digits (DECIMAL_PRECISION)
_LONG = 64
"""Bytes per text beyond which a column's texts are copied as slices: an index per byte costs
more than a slice per text."""

Columns = dict[str, "pa.Array | list[Any]"]


def bulk_columns(batch: Batch, documents: np.ndarray) -> tuple[dict[str, pa.Array], Columns] | None:
    """The envelope's arrays and the fields' columns (an Arrow array, or a list of Python
    objects where Arrow does not hold the values) of the batch's ``documents``; ``None``
    when they must be decoded instead."""
    try:
        fields = Walk(batch, _TOP).run(documents).pieces
        reader = _Reader(batch, len(documents))
        envelope = _envelope(reader, fields)
        columns: Columns = {}
        if "tags" in fields:
            columns["tags"] = reader.lists(fields["tags"], "tags")
        for name, pieces in fields.items():
            if name not in _ENVELOPE:
                columns[name] = reader.column(pieces, name)
        return envelope, columns
    except Unsupported:
        return None


def _envelope(reader: _Reader, fields: dict[str, list[Piece]]) -> dict[str, pa.Array]:
    def required(name: str) -> list[Piece]:
        pieces = fields.get(name, [])
        if sum(len(p.rows) for p in pieces if p.kind != NULL) != reader.n:
            raise Unsupported(f"{name} missing or null")
        return pieces

    schema_versions = reader.integers(fields.get("schema_version", []), missing=1)
    return {
        "position": reader.integers(fields.get("position", [])),
        "aggregate_id": reader.texts(required("aggregate_id")),
        "aggregate_type": reader.texts(required("aggregate_type")),
        "version": reader.integers(required("version")),
        "event_type": reader.texts(required("event_type")),
        "schema_version": schema_versions,
        "occurred_at": reader.times(required("occurred_at")),
        "recorded_at": reader.times(fields.get("recorded_at", [])),
        "event_id": reader.uuids(required("_id")),
    }


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    """Arrow's validity bitmap of ``valid`` (none when every row has a value)."""
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


class _Reader:
    """Full-length columns of ``n`` rows from a field's pieces."""

    def __init__(self, batch: Batch, n: int) -> None:
        self.batch = batch
        self.n = n

    def _located(self, pieces: list[Piece], kinds: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's value offset (0 where it has none) and which rows have a value; a
        piece of another kind, or a row given twice, is refused."""
        at = np.zeros(self.n, dtype=np.int64)
        valid = np.zeros(self.n, dtype=bool)
        seen = np.zeros(self.n, dtype=np.int64)
        for piece in pieces:
            seen[piece.rows] += 1  # a piece names each of its rows once
            if piece.kind == NULL:
                continue
            if piece.kind not in kinds:
                raise Unsupported(f"BSON type {piece.kind:#x} among {kinds}")
            at[piece.rows] = piece.at
            valid[piece.rows] = True
        if seen.max(initial=0) > 1:
            raise Unsupported("a field given twice in one document")
        return at, valid

    def _kinds(self, pieces: list[Piece]) -> set[int]:
        return {p.kind for p in pieces if p.kind != NULL}

    def column(self, pieces: list[Piece], name: str) -> pa.Array | list[Any]:
        """A flattened field's column, as ``FrameBuilder`` types it."""
        kinds = self._kinds(pieces)
        if not kinds:
            return pa.nulls(self.n)
        if kinds <= {INT32, INT64}:
            return self.integers(pieces)
        reads = {
            DOUBLE: self.floats,
            BOOL: self.booleans,
            STRING: self.texts,
            DATETIME: self.times,
            BINARY: self.uuids,
            DECIMAL: self.decimals,
        }
        if len(kinds) == 1 and (kind := next(iter(kinds))) in reads:
            array: pa.Array = reads[kind](pieces)
            return array
        if kinds == {ARRAY}:
            return self.lists(pieces, name)
        raise Unsupported(f"{name}: BSON types {sorted(kinds)}")

    def _masked(self, values: np.ndarray, valid: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind, mask=None if valid.all() else ~valid)

    def integers(self, pieces: list[Piece], missing: int | None = None) -> pa.Array:
        _, valid = self._located(pieces, {INT32, INT64})
        values = np.zeros(self.n, dtype=np.int64)
        for piece in pieces:
            if piece.kind == INT64:
                values[piece.rows] = self.batch.int64(piece.at)
            elif piece.kind == INT32:
                values[piece.rows] = self.batch.int32(piece.at)
        if missing is not None:  # absent (not null) means ``missing``
            present = np.zeros(self.n, dtype=bool)
            for piece in pieces:
                present[piece.rows] = True
            values[~present] = missing
            valid = valid | ~present
        return self._masked(values, valid, pa.int64())

    def floats(self, pieces: list[Piece]) -> pa.Array:
        at, valid = self._located(pieces, {DOUBLE})
        values = np.zeros(self.n, dtype=np.float64)
        values[valid] = self.batch.float64(at[valid])
        return self._masked(values, valid, pa.float64())

    def booleans(self, pieces: list[Piece]) -> pa.Array:
        at, valid = self._located(pieces, {BOOL})
        values = np.zeros(self.n, dtype=bool)
        values[valid] = self.batch.u8[at[valid]] != 0
        return self._masked(values, valid, pa.bool_())

    def times(self, pieces: list[Piece]) -> pa.Array:
        at, valid = self._located(pieces, {DATETIME})
        millis = np.zeros(self.n, dtype=np.int64)
        millis[valid] = self.batch.int64(at[valid])
        if (millis < _DATETIME_MS[0]).any() or (millis > _DATETIME_MS[1]).any():
            raise Unsupported("a time outside Python's datetime range")
        return self._masked(millis * 1000, valid, _TIME)

    def texts(self, pieces: list[Piece]) -> pa.Array:
        at, valid = self._located(pieces, {STRING})
        lengths = np.zeros(self.n, dtype=np.int64)
        lengths[valid] = self.batch.int32(at[valid]) - 1  # the length counts the final NUL
        return self._strings(at + 4, lengths, valid)

    def _strings(self, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> pa.Array:
        """The texts of ``lengths`` bytes at ``starts`` (where ``valid``) as a string array."""
        if (lengths < 0).any():
            raise Unsupported("a malformed string")
        count = len(lengths)
        offsets = np.zeros(count + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] >= 2**31:
            raise Unsupported("more text than one string array holds")
        if offsets[-1] > _LONG * count:  # long texts: copied as slices, not byte by byte
            blob = memoryview(self.batch.blob)
            chosen = zip(starts[valid].tolist(), lengths[valid].tolist(), strict=True)
            data: Any = b"".join(blob[at : at + size] for at, size in chosen)
        else:
            index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
            data = self.batch.u8[index]
        array = pa.StringArray.from_buffers(
            count,
            pa.py_buffer(offsets.astype(np.int32)),
            pa.py_buffer(data),
            _validity(valid),
            int(count - valid.sum()),
        )
        try:
            array.validate(full=True)  # UTF-8, as the driver checks it
        except pa.ArrowInvalid as exc:
            raise Unsupported("text that is not UTF-8") from exc
        return array

    def uuids(self, pieces: list[Piece]) -> pa.Array:
        at, valid = self._located(pieces, {BINARY})
        chosen = at[valid]
        if (self.batch.int32(chosen) != 16).any() or (self.batch.u8[chosen + 4] != 4).any():
            raise Unsupported("a binary value that is not a UUID")
        rows = np.zeros((self.n, 16), dtype=np.uint8)
        rows[valid] = self.batch.gathered(chosen + 5, 16)
        return uuid_rows_text(rows, ~valid)

    def decimals(self, pieces: list[Piece]) -> pa.Array:
        """BSON decimals (IEEE 754-2008 BID) as ``decimal128(18, scale)``, the type and
        scale ``FrameBuilder`` gives them (Arrow's inference from ``decimal.Decimal``)."""
        at, valid = self._located(pieces, {DECIMAL})
        words = self.batch.gathered(at[valid], 16).copy().view("<u8")
        low, high = words[:, 0], words[:, 1]
        if ((high >> np.uint64(61)) & np.uint64(3) == 3).any():
            raise Unsupported("a NaN, an infinity or a decimal of the large form")
        if (high & np.uint64((1 << 49) - 1)).any():
            raise Unsupported("a decimal coefficient beyond 64 bits")
        exponent = ((high >> np.uint64(49)) & np.uint64(0x3FFF)).astype(np.int64) - 6176
        digits = np.maximum(np.searchsorted(_POW10, low, side="right"), 1)
        scale = int(max(-exponent.min(initial=0), 0))
        whole = int(np.maximum(digits + exponent, 0).max(initial=0))
        if whole + scale > _DIGITS:
            raise Unsupported("a decimal column beyond 18 digits")
        shift = scale + exponent  # >= 0, and the scaled value stays below 10**18
        scaled = low.astype(np.int64) * _POW10[shift].astype(np.int64)
        scaled = np.where(high >> np.uint64(63) == 1, -scaled, scaled)
        values = np.zeros(self.n, dtype=np.int64)
        values[valid] = scaled
        data = np.stack([values, values >> 63], axis=1).ravel()
        return pa.Array.from_buffers(
            pa.decimal128(_DIGITS, scale),
            self.n,
            [_validity(valid), pa.py_buffer(data)],
            null_count=int(self.n - valid.sum()),
        )

    def lists(self, pieces: list[Piece], name: str) -> pa.Array | list[Any]:
        """A column of lists: of texts read in bulk (tags, ids), any other kind decoded one
        by one (their items are few), then typed as the decoded path types them; a missing
        list is ``None``."""
        at, valid = self._located(pieces, {ARRAY})
        tags = name == "tags"  # taken as they are (``list(d["tags"])``), and never null
        if tags and any(p.kind == NULL for p in pieces):
            raise Unsupported("tags that are null")
        texts = self._lists_of_texts(at, valid)
        if texts is not None:
            return texts
        values: list[Any] = [None] * self.n
        batch = self.batch
        for row, offset in zip(np.flatnonzero(valid).tolist(), at[valid].tolist(), strict=True):
            length = int.from_bytes(batch.blob[offset : offset + 4], "little")
            items = list(bson.decode(batch.raw(offset, length), AS_BSON_STORES).values())
            values[row] = items if tags else _plain(items)
        array = _typed(values, naive_is_utc=True)
        return [_python(v) for v in values] if array is None else array

    def _lists_of_texts(self, at: np.ndarray, valid: np.ndarray) -> pa.Array | None:
        """``list<string>`` when every list holds texts only (some null), read in bulk as
        documents whose fields are ``"0"``, ``"1"``...; else ``None``."""
        rows = np.flatnonzero(valid)
        try:
            items = Walk(self.batch, {}).walk(at[rows] + 4, "item").pieces
        except Unsupported:
            return None
        names = [f"item.{i}" for i in range(len(items))]
        kinds = {p.kind for parts in items.values() for p in parts}
        if list(items) != names or not kinds or not kinds <= {STRING, NULL} or STRING not in kinds:
            return None
        counts = np.zeros(self.n, dtype=np.int64)
        for parts in items.values():
            for piece in parts:
                counts[rows[piece.rows]] += 1
        offsets = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        total = int(offsets[-1])
        starts = np.zeros(total, dtype=np.int64)
        lengths = np.zeros(total, dtype=np.int64)
        present = np.zeros(total, dtype=bool)
        for index, parts in enumerate(items.values()):
            for piece in parts:
                flat = offsets[rows[piece.rows]] + index
                if (flat >= offsets[rows[piece.rows] + 1]).any():
                    return None  # not the items 0, 1, ... of a list
                if piece.kind == STRING:
                    starts[flat] = piece.at + 4
                    lengths[flat] = self.batch.int32(piece.at) - 1
                    present[flat] = True
        values = self._strings(starts, lengths, present)
        return pa.ListArray.from_arrays(
            pa.array(offsets.astype(np.int32)), values, mask=pa.array(~valid)
        )
