"""Stored documents read column by column, straight from their BSON bytes, in NumPy.

A batch of event documents is mostly many documents of few shapes: every event of a type
has the same fields in the same order. The walk below reads the batch's documents in
lockstep, one element at a time for all of them at once, as NumPy operations over the
element's offsets: a field's type byte, its name, where its value lies. Documents that part
ways (another field, another type) are split into groups that go on in lockstep each. What it
returns is, for every field path, where its values are in the bytes and of which BSON type;
reading the values themselves (numbers, texts, UUIDs, decimals, times) is done in bulk by the
caller. It never makes a Python object per value.

What it does not read in bulk it refuses (:class:`Unsupported`): the caller decodes that
batch as the driver would. That keeps one meaning for every document: the bulk reading is an
optimisation, checked against the driver's decoding by property tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DOUBLE, STRING, DOCUMENT, ARRAY, BINARY = 0x01, 0x02, 0x03, 0x04, 0x05
BOOL, DATETIME, NULL, INT32, INT64, DECIMAL = 0x08, 0x09, 0x0A, 0x10, 0x12, 0x13
_FIXED = {DOUBLE: 8, DATETIME: 8, 0x11: 8, INT64: 8, INT32: 4, BOOL: 1, NULL: 0, DECIMAL: 16}
_FIXED.update({0x07: 12, 0x06: 0, 0xFF: 0, 0x7F: 0})  # ObjectId, undefined, min/max key
_AFTER_LENGTH = {STRING: 4, 0x0D: 4, 0x0E: 4, BINARY: 5, DOCUMENT: 0, ARRAY: 0}
"""Values that start with an int32 length: the bytes they take beyond it (texts count the
length itself; binaries, the length and their subtype; documents and arrays, nothing)."""
GROUP_COST = 8
"""A group of documents of one shape costs the walk about what decoding this many documents
one by one costs the driver (measured: ~0.3 ms a group against ~35 µs a document). A batch
that splits into more groups than its documents over this is decoded by the driver: documents
that mostly differ are decoded faster one at a time."""
MIN_GROUPS = 64


class Unsupported(Exception):
    """The batch holds something the bulk reading does not (the caller decodes it whole)."""


@dataclass(slots=True)
class Piece:
    """Values of one field for some documents: their rows, BSON type and value offsets."""

    kind: int
    rows: np.ndarray
    at: np.ndarray


@dataclass(slots=True)
class Fields:
    """What a walk found: every field path's pieces, in the order first seen."""

    pieces: dict[str, list[Piece]] = field(default_factory=dict)

    def add(self, name: str, piece: Piece) -> None:
        self.pieces.setdefault(name, []).append(piece)


class Batch:
    """Documents one after another in ``blob``, starting at ``starts``.

    Values are read through views of the bytes in which element ``i`` is the value whose
    first byte is at offset ``i`` (a stride of one byte): reading a field of every document
    is one NumPy index operation, whatever the documents' alignment.
    """

    def __init__(self, blob: bytes, starts: np.ndarray) -> None:
        self.blob = blob
        self.u8 = np.frombuffer(blob, dtype=np.uint8)
        self.starts = starts
        self.count = len(starts)
        self._views: dict[tuple[str, int], np.ndarray] = {}

    @classmethod
    def of(cls, raws: Sequence[bytes]) -> Batch:
        """A batch of separate documents."""
        lengths = np.fromiter((len(r) for r in raws), dtype=np.int64, count=len(raws))
        starts = np.zeros(len(raws), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        return cls(b"".join(raws), starts)

    def _values(self, dtype: str) -> np.ndarray:
        """The bytes as values of ``dtype`` starting at every offset."""
        view = self._views.get((dtype, 0))
        if view is None:
            size = max(len(self.blob) - np.dtype(dtype).itemsize + 1, 0)
            view = np.ndarray(shape=(size,), dtype=dtype, buffer=self.blob, strides=(1,))
            self._views[(dtype, 0)] = view
        return view

    def _rows_of(self, width: int) -> np.ndarray:
        """The bytes as rows of ``width`` bytes starting at every offset."""
        view = self._views.get(("u1", width))
        if view is None:
            size = max(len(self.blob) - width + 1, 0)
            view = np.lib.stride_tricks.as_strided(
                self.u8, shape=(size, width), strides=(1, 1), writeable=False
            )
            self._views[("u1", width)] = view
        return view

    # -- reading values at offsets, for all documents at once --------------------------------

    def gathered(self, at: np.ndarray, width: int) -> np.ndarray:
        """``width`` bytes at each offset, as rows of a matrix."""
        if not len(at):
            return np.zeros((0, width), dtype=np.uint8)
        matrix: np.ndarray = self._rows_of(width)[at]
        return matrix

    def int32(self, at: np.ndarray) -> np.ndarray:
        values: np.ndarray = self._values("<i4")[at].astype(np.int64)
        return values

    def int64(self, at: np.ndarray) -> np.ndarray:
        values: np.ndarray = self._values("<i8")[at]
        return values

    def float64(self, at: np.ndarray) -> np.ndarray:
        values: np.ndarray = self._values("<f8")[at]
        return values

    def raw(self, at: int, length: int) -> bytes:
        return self.blob[at : at + length]


class Walk:
    """One lockstep walk over a batch (see the module doc).

    ``top``: what to do with each top-level field, by name: ``"keep"`` (a column of its own),
    ``"flatten"`` (a document whose fields become columns under its name), anything absent is
    skipped. Below the top level every field is kept, documents flattened.
    """

    def __init__(self, batch: Batch, top: dict[str, str]) -> None:
        self.batch = batch
        self.top = top
        self.fields = Fields()
        self.groups = 0

    def run(self, documents: np.ndarray) -> Fields:
        """Walk the documents at ``documents`` (indexes into the batch); the pieces' rows are
        indexes into ``documents``."""
        rows = np.arange(len(documents), dtype=np.int64)
        self._document(rows, self.batch.starts[documents] + 4, "")
        return self.fields

    def walk(self, at: np.ndarray, prefix: str) -> Fields:
        """Walk the documents whose elements start at ``at`` (arrays too: their fields are
        ``0``, ``1``...), every field kept under ``prefix``; the pieces' rows index ``at``."""
        self._document(np.arange(len(at), dtype=np.int64), at, prefix)
        return self.fields

    def _document(self, rows: np.ndarray, at: np.ndarray, prefix: str) -> np.ndarray:
        """Walk the elements of one (sub)document per row, from ``at``; the offsets just after
        each one's end."""
        u8 = self.batch.u8
        if not len(at):
            return at
        while True:
            kinds = u8[at]
            kind = int(kinds[0])
            name = self._uniform_name(at)
            if name is None or not (kinds == kind).all():
                return self._split(rows, at, prefix)
            if kind == 0:
                return at + 1
            at = self._value(rows, at + 2 + len(name), kind, prefix, name.decode())

    def _uniform_name(self, at: np.ndarray) -> bytes | None:
        """The element name at every offset, when it is the same for all of them."""
        blob, u8 = self.batch.blob, self.batch.u8
        first = int(at[0])
        if blob[first] == 0:  # the end of a document: no name
            return b"" if (u8[at] == 0).all() else None
        name = blob[first + 1 : blob.index(b"\0", first + 1)]
        size = len(name)
        if int(at.max()) + 1 + size >= len(u8):  # a shorter name near the end: not the same
            return None
        if not (u8[at + 1 + size] == 0).all():
            return None
        if size and not (self.batch.gathered(at + 1, size) == np.frombuffer(name, np.uint8)).all():
            return None
        return name

    def _split(self, rows: np.ndarray, at: np.ndarray, prefix: str) -> np.ndarray:
        """Documents that part ways here: each group of one shape goes on on its own."""
        blob = self.batch.blob
        groups: dict[bytes, list[int]] = {}
        for i, offset in enumerate(at.tolist()):
            end = offset if blob[offset] == 0 else blob.index(b"\0", offset + 1)
            groups.setdefault(blob[offset : end + 1], []).append(i)
        self.groups += len(groups)
        if self.groups > max(MIN_GROUPS, self.batch.count // GROUP_COST):
            raise Unsupported("too many shapes in one batch")
        ends = np.empty_like(at)
        for members in groups.values():
            chosen = np.asarray(members, dtype=np.int64)
            ends[chosen] = self._document(rows[chosen], at[chosen], prefix)
        return ends

    def _value(self, rows: np.ndarray, at: np.ndarray, kind: int, prefix: str, name: str) -> Any:
        """Record (or skip) one field's values at ``at``; the offsets after them."""
        if prefix:
            column, action = f"{prefix}.{escaped(name)}", "keep"
        else:
            column, action = name, self.top.get(name, "skip")
        if action == "flatten" and kind != DOCUMENT:
            if kind != NULL:  # a top-level document that is something else
                raise Unsupported(f"{column} is not a document")
            return at
        if kind == DOCUMENT and action != "skip":
            lengths = self.batch.int32(at)
            if action == "flatten" or (lengths > 5).all():  # an empty one is kept whole
                ends: np.ndarray = self._document(rows, at + 4, column)
                return ends
            raise Unsupported(f"an empty document in {column}")
        if action != "skip":
            self.fields.add(column, Piece(kind, rows, at))
        return at + self._size(at, kind)

    def _size(self, at: np.ndarray, kind: int) -> np.ndarray:
        if kind in _FIXED:
            return np.full(len(at), _FIXED[kind], dtype=np.int64)
        if kind in _AFTER_LENGTH:
            return self.batch.int32(at) + _AFTER_LENGTH[kind]
        raise Unsupported(f"BSON type {kind:#x}")


def escaped(key: str) -> str:
    """A key as a part of a dotted column name: dots and backslashes escaped, so that
    ``{"a": {"b": 1}}`` and ``{"a.b": 2}`` never share a column."""
    if "." in key or "\\" in key:
        return key.replace("\\", "\\\\").replace(".", "\\.")
    return key


# -- the scan's selection ------------------------------------------------------------------------


def _positions(batch: Batch, fields: Fields) -> np.ndarray:
    """Every document's position (0 where one has none, as the scan's filter counts it)."""
    positions = np.zeros(batch.count, dtype=np.int64)
    for piece in fields.pieces.get("position", []):
        if piece.kind == INT64:
            positions[piece.rows] = batch.int64(piece.at)
        elif piece.kind == INT32:
            positions[piece.rows] = batch.int32(piece.at)
        elif piece.kind != NULL:
            raise Unsupported("a position that is not an integer")
    return positions


def selection(
    batch: Batch, after: int, through: int, tombstone: str
) -> tuple[np.ndarray, np.ndarray]:
    """The indexes of the documents with ``after < position <= through`` and no
    ``tombstone`` field, and their positions."""
    everything = np.arange(batch.count, dtype=np.int64)
    try:
        fields = Walk(batch, {"position": "keep", tombstone: "keep"}).run(everything)
        positions = _positions(batch, fields)
    except Unsupported:
        return _selection_one_by_one(batch, after, through, tombstone)
    kept = (positions > after) & (positions <= through)
    for piece in fields.pieces.get(tombstone, []):
        kept[piece.rows] = False
    return np.flatnonzero(kept), positions[kept]


def decoded(batch: Batch, documents: np.ndarray) -> list[dict[str, Any]]:
    """``documents`` decoded as the driver decodes them for bulk readers (``AS_BSON_STORES``)."""
    import bson

    from .bson_values import AS_BSON_STORES

    blob = batch.blob
    parts = []
    for start in batch.starts[documents].tolist():
        parts.append(blob[start : start + int.from_bytes(blob[start : start + 4], "little")])
    found: list[dict[str, Any]] = bson.decode_all(b"".join(parts), AS_BSON_STORES)
    return found


def _selection_one_by_one(
    batch: Batch, after: int, through: int, tombstone: str
) -> tuple[np.ndarray, np.ndarray]:
    kept, positions = [], []
    for i, doc in enumerate(decoded(batch, np.arange(batch.count, dtype=np.int64))):
        position = doc.get("position", 0)
        if isinstance(position, int) and after < position <= through and tombstone not in doc:
            kept.append(i)
            positions.append(position)
    return np.asarray(kept, dtype=np.int64), np.asarray(positions, dtype=np.int64)


def cursor_batch(cursor: bytes) -> tuple[np.ndarray, int]:
    """Where the documents of a cursor's batch (``firstBatch`` or ``nextBatch``) start in
    the cursor document's bytes, and the cursor's id: read without decoding the documents."""
    at, starts, cursor_id = 4, np.zeros(0, dtype=np.int64), 0
    while cursor[at] != 0:
        kind = cursor[at]
        end = cursor.index(b"\0", at + 1)
        name = cursor[at + 1 : end]
        at = end + 1
        if kind == ARRAY and name in (b"firstBatch", b"nextBatch"):
            starts = _elements(cursor, at)
        elif kind == INT64 and name == b"id":
            cursor_id = int.from_bytes(cursor[at : at + 8], "little", signed=True)
        at += _skip(cursor, at, kind)
    return starts, cursor_id


def _elements(blob: bytes, array: int) -> np.ndarray:
    """The starts of the documents in the array at ``array``."""
    starts = []
    at = array + 4
    while blob[at] != 0:
        if blob[at] != DOCUMENT:
            raise ValueError("a cursor batch holds something else than documents")
        at = blob.index(b"\0", at + 1) + 1
        starts.append(at)
        at += int.from_bytes(blob[at : at + 4], "little")
    return np.asarray(starts, dtype=np.int64)


def _skip(blob: bytes, at: int, kind: int) -> int:
    if kind in _FIXED:
        return _FIXED[kind]
    if kind in _AFTER_LENGTH:
        return int.from_bytes(blob[at : at + 4], "little") + _AFTER_LENGTH[kind]
    raise ValueError(f"BSON type {kind:#x} in a cursor document")
