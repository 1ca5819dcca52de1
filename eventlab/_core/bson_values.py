"""BSON conversion: Python values in, exact BSON out, and back.

The driver encodes dicts, lists, str, int, float, bool, None, datetime, UUID and ObjectId natively.
Everything else an event payload may reasonably hold is converted here, once, in one walk that
also names the path of anything that cannot be stored, so a bad payload fails before any write.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import bson
from bson import Binary, Decimal128, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from .errors import InvalidNameError, SerializationError

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""MongoDB's per-document limit."""

_NATIVE_SCALARS = (str, bool, int, float, type(None), uuid.UUID, ObjectId, bytes, Binary, Int64)


CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True,
    tzinfo=UTC,
    uuid_representation=4,  # UuidRepresentation.STANDARD
)
"""Codec options for every collection eventlab reads: aware UTC datetimes, standard UUIDs.

Decimal128 is turned back into Decimal by :func:`decimals_to_python` rather than by a
``TypeRegistry`` decoder: a registry makes the C decoder call back into Python for *every* value,
which measured 2.4x slower decoding of whole documents; the walk touches payloads only.
"""

AS_BSON_STORES: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=0,  # UuidRepresentation.UNSPECIFIED: UUIDs stay Binary (subtype 4)
)
"""Codec options for readers that convert values in bulk (frames): datetimes naive (BSON
stores UTC), UUIDs ``Binary``. A UTC-aware ``datetime`` and a ``uuid.UUID`` object per value
were 45 % of the driver's decoding of an event document."""


_MASK_49 = (1 << 49) - 1
_UNPACK_BID = struct.Struct("<QQ").unpack
_PACK_BID = struct.Struct("<QQ").pack
_MASK_64 = (1 << 64) - 1


def decimal128_to_decimal(value: Decimal128) -> Decimal:
    """``value.to_decimal()``, about four times faster for finite values.

    ``Decimal128.to_decimal`` decodes the IEEE 754-2008 BID layout in Python; for the common
    form (finite, coefficient below 2**113) the layout is sign | 14-bit exponent | 113-bit
    coefficient, and ``Decimal("<coefficient>E<exponent>")`` rebuilds the value exactly in C.
    """
    low, high = _UNPACK_BID(value.bid)
    if (high >> 61) & 3 == 3:  # NaN, infinities and the large-coefficient form
        return value.to_decimal()
    coefficient = ((high & _MASK_49) << 64) | low
    exponent = ((high >> 49) & 0x3FFF) - 6176
    return Decimal(f"{'-' if high >> 63 else ''}{coefficient}E{exponent}")


def decimals_to_python(value: Any) -> Any:
    """Replace Decimal128 by Decimal throughout freshly decoded dicts and lists, in place."""
    if type(value) is dict:
        for key, item in value.items():
            kind = type(item)
            if kind is Decimal128:
                value[key] = decimal128_to_decimal(item)
            elif kind is dict or kind is list:
                decimals_to_python(item)
    elif type(value) is list:
        for index, item in enumerate(value):
            kind = type(item)
            if kind is Decimal128:
                value[index] = decimal128_to_decimal(item)
            elif kind is dict or kind is list:
                decimals_to_python(item)
    return value


def same_bson_value(mine: Any, theirs: Any) -> bool:
    """Whether two values are the same BSON value: equal, and of the same BSON type all the
    way down (Python's ``True == 1`` and ``1 == 1.0`` hold, but BSON stores a boolean, an
    integer and a double as three different things). Keys compare as sets: an idempotent
    retry may build the same document with its keys in another order."""
    if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
        return mine.keys() == theirs.keys() and all(
            same_bson_value(value, theirs[key]) for key, value in mine.items()
        )
    if isinstance(mine, list | tuple) and isinstance(theirs, list | tuple):
        return len(mine) == len(theirs) and all(
            same_bson_value(a, b) for a, b in zip(mine, theirs, strict=True)
        )
    return _bson_kind(mine) == _bson_kind(theirs) and bool(mine == theirs)


def _bson_kind(value: Any) -> type:
    """The BSON type a Python value is stored as (``Int64`` is an int; bools are not)."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    return type(value)


def find_unencodable_int(value: Any, path: str) -> str | None:
    """The path of the first int outside BSON's 64-bit range in ``value``, or ``None``.

    Not on the hot path: ints are copied unchecked when encoding (most payloads are full of
    them), and this runs only after the driver refused a document with ``OverflowError``.
    """
    if type(value) is int:
        return None if -(2**63) <= value < 2**63 else path
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = find_unencodable_int(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = find_unencodable_int(item, f"{path}[{i}]")
            if found:
                return found
    return None


def to_bson_value(value: Any, path: str = "payload", depth: int = 2) -> Any:
    """Convert ``value`` to a BSON-encodable equivalent, or raise naming ``path``.

    Decimal becomes Decimal128 (exact to 34 digits, else an error), enums their value, tuples and
    sets lists. Datetimes must be aware; they are stored in UTC at millisecond precision (BSON's).
    Bare dates and times are rejected: their instant is ambiguous. ``depth``: the nesting level
    of ``value`` in its stored document (a payload's is 2); MongoDB stores 100 levels.
    """
    kind = type(value)
    if kind in _SCALAR_EXACT:
        return value
    if depth > MAX_NESTING and isinstance(value, _CONTAINERS):
        raise _too_deep(path)
    # Hot path (every payload of every append): scalars are copied without a call, and a key
    # is only examined closely when a cheap test says it might be bad.
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not key or key[0] == "$" or "\x00" in key:
                _reject_key(key, path)
            out[key] = (
                item
                if type(item) in _SCALAR_EXACT
                else to_bson_value(item, f"{path}.{key}", depth + 1)
            )
        return out
    if kind is list or kind is tuple:
        return [
            item if type(item) in _SCALAR_EXACT else to_bson_value(item, f"{path}[{i}]", depth + 1)
            for i, item in enumerate(value)
        ]
    if isinstance(value, datetime):
        return to_bson_datetime(value, path)
    if isinstance(value, enum.Enum):
        return to_bson_value(value.value, path, depth)
    if isinstance(value, Decimal):
        return _to_decimal128(value, path)
    if isinstance(value, _NATIVE_SCALARS):
        return value
    if isinstance(value, set | frozenset):
        try:
            items = sorted(value)
        except TypeError as exc:
            raise SerializationError(f"{path}: set elements cannot be ordered", path=path) from exc
        return [to_bson_value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
    if isinstance(value, date | time):
        raise SerializationError(
            f"{path}: {type(value).__name__} {value!r} has no BSON type; "
            "use an aware datetime or an ISO string",
            path=path,
        )
    if isinstance(value, Decimal128 | Regex | Timestamp):
        return value
    raise SerializationError(
        f"{path}: value of type {type(value).__name__} is not serializable to BSON ({value!r:.60})",
        path=path,
    )


_SCALAR_EXACT = frozenset({str, int, float, bool, type(None), uuid.UUID, ObjectId, bytes})
_CONTAINERS = (Mapping, list, tuple, set, frozenset)
"""What nests a level deeper in BSON (a document or an array)."""


def to_bson_datetime(value: datetime, path: str) -> datetime:
    """An aware datetime in UTC truncated to milliseconds (what BSON stores)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise SerializationError(
            f"{path}: naive datetime {value.isoformat()}; use an aware datetime "
            "(datetime.now(UTC)) so its instant is unambiguous",
            path=path,
        )
    value = value.astimezone(UTC)
    micro = value.microsecond
    if micro % 1000:
        value = value.replace(microsecond=micro - micro % 1000)
    return value


def _to_decimal128(value: Decimal, path: str) -> Decimal128:
    sign, digits, exponent = value.as_tuple()
    # The common form (finite, at most 34 digits, the exponent in range) is laid out as BSON
    # stores it, sign | 14-bit biased exponent | 113-bit coefficient: exact by construction,
    # and three times faster than ``Decimal128(value)`` and the round trip that checks it
    # (every decimal of every append and import passes here). Property-tested against it.
    if type(exponent) is int and len(digits) <= 34 and -6176 <= exponent <= 6111:
        coefficient = 0
        for digit in digits:
            coefficient = coefficient * 10 + digit
        high = (sign << 63) | ((exponent + 6176) << 49) | (coefficient >> 64)
        return Decimal128.from_bid(_PACK_BID(coefficient & _MASK_64, high))
    if value.is_snan():  # it raises on every comparison: no reader could test it
        raise SerializationError(
            f"{path}: a signaling NaN decimal cannot be stored (use Decimal('NaN'))", path=path
        )
    try:
        encoded = Decimal128(value)
    except Exception as exc:
        raise SerializationError(
            f"{path}: Decimal {value} cannot be stored exactly as Decimal128 "
            "(34 significant digits at most)",
            path=path,
        ) from exc
    decoded = decimal128_to_decimal(encoded)
    if decoded != value and not (value.is_nan() and decoded.is_nan()):  # NaN is not NaN
        raise SerializationError(f"{path}: Decimal {value} would be rounded", path=path)
    return encoded


MAX_NESTING = 100
"""The levels of documents and arrays MongoDB stores in one document (the document itself is
the first)."""


def _too_deep(path: str) -> SerializationError:
    shown = path if len(path) <= 100 else f"{path[:60]}...{path[-30:]}"
    return SerializationError(
        f"{shown}: nested deeper than MongoDB stores ({MAX_NESTING} levels of documents and "
        "arrays in one document)",
        path=path,
    )


def not_unicode(what: str, exc: UnicodeEncodeError) -> SerializationError:
    """The error for ``what`` holding text BSON cannot store (``exc``: its encoding failed)."""
    return SerializationError(
        f"{what} holds text that is not valid Unicode (a lone surrogate, "
        f"{exc.object[exc.start : exc.end]!r}); BSON stores UTF-8 text only"
    )


def _reject_key(key: object, path: str) -> None:
    if not isinstance(key, str):
        raise SerializationError(
            f"{path}: keys must be strings, got {type(key).__name__} {key!r}", path=path
        )
    check_field_name(key, path=path)


def check_field_name(name: str, *, path: str = "field") -> None:
    """Reject keys MongoDB would misread: empty, ``$``-prefixed, containing NUL."""
    if not name:
        raise SerializationError(f"{path}: empty key", path=path)
    if name[0] == "$":
        raise SerializationError(
            f"{path}: key {name!r} starts with '$', which MongoDB reads as an operator", path=path
        )
    if "\x00" in name:
        raise SerializationError(f"{path}: key {name!r} contains a NUL character", path=path)


def encoded_size(document: Any, what: str, limit: int = MAX_DOCUMENT_BYTES) -> int:
    """The BSON size of ``document``, refused as MongoDB would refuse it: an int over 64 bits
    (:class:`SerializationError` naming its path), a document over ``limit`` bytes
    (:class:`DocumentTooLargeError`)."""
    from .errors import DocumentTooLargeError

    try:
        size = len(bson.encode(document, codec_options=CODEC_OPTIONS))
    except OverflowError:
        path = find_unencodable_int(document, what) or what
        raise SerializationError(
            f"{path} does not fit BSON's 64-bit integers (store big numbers as Decimal or str)",
            path=path,
        ) from None
    except UnicodeEncodeError as exc:
        raise not_unicode(what, exc) from None
    if size > limit - 1024:
        raise DocumentTooLargeError(
            f"{what} encodes to {size:,} bytes; MongoDB's limit is {limit:,}"
        )
    return size


def check_document_size(raw: RawBSONDocument | bytes, what: str) -> None:
    """Raise :class:`DocumentTooLargeError` when an encoded document exceeds 16 MiB."""
    from .errors import DocumentTooLargeError

    size = len(raw.raw if isinstance(raw, RawBSONDocument) else raw)
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLargeError(
            f"{what} encodes to {size:,} bytes; MongoDB's limit is {MAX_DOCUMENT_BYTES:,}"
        )


_FORBIDDEN_COLLECTION_CHARS = ("$", "\x00")
_FORBIDDEN_DATABASE_CHARS = ("/", "\\", ".", " ", '"', "$", "\x00", "*", "<", ">", ":", "|", "?")


def _without_forbidden_chars(name: object, kind: str, forbidden: tuple[str, ...]) -> str:
    """``name`` if it is a non-empty string without any of the ``forbidden`` characters of a
    MongoDB ``kind`` name, else raise."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"{kind} name must be a non-empty string, got {name!r}")
    for char in forbidden:
        if char in name:
            raise InvalidNameError(f"{kind} name {name!r} contains {char!r}")
    return name


def check_collection_name(name: object) -> str:
    """Return ``name`` if MongoDB accepts it as a collection name, else raise."""
    name = _without_forbidden_chars(name, "collection", _FORBIDDEN_COLLECTION_CHARS)
    if name.startswith("system.") or name.startswith(".") or name.endswith("."):
        raise InvalidNameError(
            f"collection name {name!r} is reserved or malformed (leading/trailing '.' or system.)"
        )
    if len(name.encode()) > 200:
        raise InvalidNameError(f"collection name {name[:40]!r}... is longer than 200 bytes")
    return name


def check_database_name(name: object) -> str:
    """Return ``name`` if MongoDB accepts it as a database name, else raise."""
    name = _without_forbidden_chars(name, "database", _FORBIDDEN_DATABASE_CHARS)
    if len(name.encode()) > 63:
        raise InvalidNameError(f"database name {name!r} is longer than 63 bytes")
    return name
