"""Argument checks shared by every entry point: ids and names are values, never operators."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from bson import Code, ObjectId

from .errors import ConfigurationError, InvalidIdError
from .records import ExpectedVersion

_INT64 = range(-(2**63), 2**63)
ID_TYPES = (str, int, uuid.UUID, ObjectId)
"""What an entity id may be: plain values MongoDB compares by equality."""


def check_id(value: Any, name: str = "id") -> Any:
    """An entity id as a filter value: a ``str``, ``int`` (64-bit), ``UUID`` or ``ObjectId``.

    Anything else (a dict of operators, a list, a regex, ``None``, a float, a bool) is refused
    with :class:`~eventlab.InvalidIdError` naming ``name``, before any filter is built.
    """
    # bson.Code is a str subclass that the server would run as JavaScript.
    if isinstance(value, bool | Code) or not isinstance(value, ID_TYPES):
        raise InvalidIdError(
            f"{name} must be a str, int, UUID or ObjectId value, got {type(value).__name__} "
            f"{_short(value)}"
        )
    if isinstance(value, int) and value not in _INT64:
        raise InvalidIdError(f"{name} {value} does not fit MongoDB's 64-bit integers")
    return value


def check_name(value: Any, name: str, error: type[InvalidIdError] = InvalidIdError) -> str:
    """A name used as a filter value (a stream id, an aggregate type): a non-empty ``str`` of
    text MongoDB can store (UTF-8: no lone surrogate), with no NUL character."""
    if not isinstance(value, str) or isinstance(value, Code) or not value:
        raise error(f"{name} must be a non-empty string, got {_short(value)}")
    if "\x00" in value:
        raise error(f"{name} {_short(value)} contains a NUL character")
    if not value.isascii():
        _check_encodable(value, name, error)
    return value


def _check_encodable(value: str, name: str, error: type[InvalidIdError]) -> None:
    # BSON strings are UTF-8: a lone surrogate (from a bad decode, surrogateescape'd bytes)
    # would fail in the driver's encoder, untyped, or be kept by the memory backend only.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(
            f"{name} {_short(value)} is not UTF-8 text: a lone surrogate at index {exc.start}"
        ) from None


MAX_ID_BYTES = 1024
"""The longest stream id, in UTF-8 bytes: an id is a key, repeated in every event, index entry
and metadata document of its stream (docs/lifecycle.md, "Stream ids")."""


def check_aggregate_id(aggregate_id: Any) -> str:
    """A stream id: a non-empty string (never coerced: ``123`` is not ``"123"``) of at most
    :data:`MAX_ID_BYTES` UTF-8 bytes, no NUL, no lone surrogate. Every entry point that takes
    a stream id (appends, reads, snapshots, the lifecycle) checks it here, on every backend."""
    checked = check_name(aggregate_id, "aggregate_id")
    # len() first: a 10 MB id is refused without encoding it (each char is >= 1 byte).
    if len(checked) > MAX_ID_BYTES or len(checked.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidIdError(
            f"aggregate_id {_short(checked)} is longer than {MAX_ID_BYTES:,} UTF-8 bytes"
        )
    return checked


def check_callback(callback: Any) -> Any:
    """A function to call later (an after-commit hook): refused now if it cannot be called."""
    if not callable(callback):
        raise ConfigurationError(f"a callback must be callable, got {_short(callback)}")
    return callback


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(value: Any, name: str) -> int:
    """A non-negative ``int`` argument that fits BSON's 64-bit integers (``bool`` refused)."""
    if type(value) is not int or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative int, got {_short(value)}")
    if value not in _INT64:
        raise ConfigurationError(f"{name} {value} does not fit MongoDB's 64-bit integers")
    return value


def check_positive(value: Any, name: str) -> int:
    """An ``int`` argument ``>= 1`` (counts, versions)."""
    number = check_int(value, name)
    if number < 1:
        raise ConfigurationError(f"{name} must be >= 1, got {number}")
    return number


MAX_PAGE = 100_000
"""The largest page (events per read, per batch) a reader takes: memory per read stays bounded."""


def check_page_size(value: Any, name: str = "page_size") -> int:
    """A page size: an ``int`` from 1 to :data:`MAX_PAGE`."""
    number = check_positive(value, name)
    if number > MAX_PAGE:
        raise ConfigurationError(f"{name} must be at most {MAX_PAGE:,}, got {number:,}")
    return number


def check_types(types: Iterable[str], kind: str = "event type") -> list[str]:
    """Type names for a filter: non-empty strings (one string is one name)."""
    if isinstance(types, str):
        names = [types]
    elif isinstance(types, dict) or not isinstance(types, Iterable):
        raise ConfigurationError(
            f"{kind} names must be an iterable of strings, got {_short(types)}"
        )
    else:
        names = list(types)
    for name in names:
        if not isinstance(name, str) or not name or isinstance(name, Code) or "\x00" in name:
            raise ConfigurationError(f"{kind} names must be non-empty strings: {_short(name)}")
    return names


def normalize_expected(expected: Any) -> int | ExpectedVersion:
    """An expected version: an ``int >= 0`` or an :class:`ExpectedVersion` (NO_STREAM is 0)."""
    if expected is ExpectedVersion.NO_STREAM:
        return 0
    if isinstance(expected, ExpectedVersion):
        return expected
    if type(expected) is not int or expected < 0:
        raise ConfigurationError(
            f"expected_version must be an int >= 0 or an ExpectedVersion, got {_short(expected)}"
        )
    return check_int(expected, "expected_version")
