"""A frame's values: the Arrow type of a column of decoded BSON values, and the conversions
both ways of reading a page share (decoded documents in ``_frame_build``, BSON bytes in
``_bson_frame``): exact decimals, UUIDs as text, times in UTC, lists of one kind.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from .._core.bson_values import decimal128_to_decimal

_TIME = pa.timestamp("us", tz="UTC")
# Arrow types that round-trip through pandas as the values went in; anything else (lists,
# structs, mixed kinds) is kept as Python objects.
_SCALAR_IDS = {pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean}


def _typed(values: list[Any], *, naive_is_utc: bool = False) -> pa.Array | None:
    """An Arrow array of ``values`` when Arrow holds them as they are, else ``None``."""
    kinds = {type(v) for v in values if v is not None}
    if Int64 in kinds:  # BSON's 64-bit integers decode as ``Int64``, an int: an int column
        kinds = (kinds - {Int64}) | {int}
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {str}:
        return pa.array(values, pa.string())
    if kinds == {uuid.UUID}:  # ids as text, as the event ids are
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if kinds == {Binary} and all(v is None or _is_uuid(v) for v in values):
        return uuid_text(values)
    if kinds == {Binary, uuid.UUID} and all(type(v) is not Binary or _is_uuid(v) for v in values):
        return pa.array([None if v is None else str(_python(v)) for v in values], pa.string())
    if kinds == {list}:
        return _list_array(values)
    if kinds == {datetime}:
        if not naive_is_utc and any(v is not None and v.tzinfo is None for v in values):
            return None  # naive times given by a caller stay as they were given
        return pa.array(values, _TIME)
    if Decimal in kinds and kinds <= {Decimal, int}:
        # Exact decimals (money) as Arrow decimals: sums stay exact, the cache stores them.
        try:
            array = pa.array([None if v is None else Decimal(v) for v in values])
            return array.cast(
                decimal_type(array.type.precision - array.type.scale, array.type.scale)
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):  # > 38 digits, inf
            return None
    if kinds == {int, float}:  # as pandas types them, while every int is a float exactly
        if any(type(v) is not float and v is not None and abs(v) > 2**53 for v in values):
            return None
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds <= {int} or kinds <= {float} or kinds == {bool}:
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, OverflowError):  # an int beyond 64 bits
            return None
        if any(check(array.type) for check in _SCALAR_IDS):
            return array
    return None


DECIMAL_PRECISION = 18
"""The precision of a decimal column whose values all fit 18 digits (money does): a product
with an integer column (``decimal128(19, 0)``) or with itself, and a sum, stay within Arrow's
38 digits. A column with a longer value is ``decimal128(38, scale)``: exact, summed, but
multiplied only after a cast (docs/frames.md, "Decimals")."""


def decimal_type(digits: int, scale: int) -> pa.Decimal128Type:
    """The column type of decimals with up to ``digits`` digits before the point; beyond 38
    digits, ``ArrowInvalid`` (the column stays Python objects)."""
    needed = max(digits, 0) + max(scale, 0)
    if needed > 38:
        raise pa.ArrowInvalid(f"decimals of {needed} digits do not fit decimal128")
    return pa.decimal128(DECIMAL_PRECISION if needed <= DECIMAL_PRECISION else 38, scale)


def _list_array(values: list[Any]) -> pa.Array | None:
    """Lists of one scalar kind (tags, ids, numbers) as an Arrow list column; anything else
    (nested lists, dicts, several kinds) stays Python objects."""
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    if not pa.types.is_list(array.type):
        return None
    item = array.type.value_type
    if pa.types.is_string(item):
        # Arrow takes bytes among text as text, without a word: such lists stay objects.
        texts = all(type(i) is str or i is None for v in values if v for i in v)
        return array if texts else None
    if pa.types.is_null(item) or pa.types.is_boolean(item):
        return array
    if pa.types.is_integer(item) or pa.types.is_floating(item):
        return array
    return None


def _plain(value: Any) -> Any:
    """BSON's decimals as Python's, all the way down (lists and dicts kept whole)."""
    if isinstance(value, Decimal128):
        return decimal128_to_decimal(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if all(type(v) in _LEAVES for v in value):  # tags, ids: nothing to convert
            return value
        return [_plain(v) for v in value]
    return value


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _python(value: Any) -> Any:
    """A value decoded as BSON stores it, as the driver's usual decoding gives it: UUIDs as
    ``uuid.UUID``, times aware of UTC, all the way down (for columns of objects)."""
    kind = type(value)
    if kind is Binary and _is_uuid(value):
        return uuid.UUID(bytes=bytes(value))
    if kind is datetime and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if kind is dict:
        return {k: _python(v) for k, v in value.items()}
    if kind is list:
        return [_python(v) for v in value]
    return value


def _is_uuid(value: Binary) -> bool:
    return value.subtype == 4 and len(value) == 16


def _ids_as_text(ids: list[Any]) -> pa.Array:
    """Event ids as text: in bulk when they arrive as BSON UUIDs (the frames' reads)."""
    if all(type(i) is Binary and _is_uuid(i) for i in ids):
        return uuid_text(ids)
    if all(type(i) is uuid.UUID for i in ids):  # events in memory (events_frame)
        return uuid_text([i.bytes for i in ids])
    return pa.array([str(_python(i)) for i in ids], pa.string())


_HEX = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint8).reshape(256, 2)
# Where each of the 32 hex digits of a UUID goes in its 36-character text (dashes between).
_DIGIT_AT = np.array([*range(8), *range(9, 13), *range(14, 18), *range(19, 23), *range(24, 36)])


def uuid_text(values: list[Any]) -> pa.Array:
    """16-byte UUIDs (``None`` for a missing one) as canonical text, ``str(uuid.UUID(...))``,
    in one array operation instead of one ``UUID`` object per value."""
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    raw = b"".join(bytes(16) if v is None else v for v in values)
    return uuid_rows_text(np.frombuffer(raw, dtype=np.uint8).reshape(len(values), 16), missing)


def uuid_rows_text(rows: np.ndarray, missing: np.ndarray) -> pa.Array:
    """UUIDs given as the rows of an ``(n, 16)`` byte matrix as canonical text."""
    digits = _HEX[rows.ravel()].reshape(len(rows), 32)
    text = np.full((len(rows), 36), ord("-"), dtype=np.uint8)
    text[:, _DIGIT_AT] = digits
    array = pa.array(
        text.view("S36").ravel(), pa.binary(36), mask=missing if missing.any() else None
    )
    return array.cast(pa.string())
