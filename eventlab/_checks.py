"""Argument checks shared by every entry point: ids and names are values, never operators."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._errors import ConfigurationError, InvalidEventError
from ._records import ExpectedVersion


def check_aggregate_id(aggregate_id: Any) -> str:
    """A stream id: a non-empty string."""
    if not isinstance(aggregate_id, str):
        aggregate_id = str(aggregate_id) if aggregate_id is not None else ""
    if not aggregate_id:
        raise InvalidEventError("aggregate_id must be a non-empty string")
    return str(aggregate_id)


def check_int(value: Any, name: str) -> int:
    """A non-negative ``int`` argument (``bool`` refused)."""
    if type(value) is not int or value < 0:
        raise ConfigurationError(f"{name} must be a non-negative int, got {value!r}")
    return value


def check_positive(value: Any, name: str) -> int:
    """An ``int`` argument ``>= 1`` (page sizes, counts)."""
    number = check_int(value, name)
    if number < 1:
        raise ConfigurationError(f"{name} must be >= 1, got {number}")
    return number


def check_types(event_types: Iterable[str]) -> list[str]:
    """Event type names for a filter: non-empty strings."""
    names = list(event_types) if not isinstance(event_types, str) else [event_types]
    for name in names:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"event type names must be non-empty strings: {name!r}")
    return names


def normalize_expected(expected: Any) -> int | ExpectedVersion:
    """An expected version: an ``int >= 0`` or an :class:`ExpectedVersion` (NO_STREAM is 0)."""
    if expected is ExpectedVersion.NO_STREAM:
        return 0
    if isinstance(expected, ExpectedVersion):
        return expected
    if type(expected) is not int or expected < 0:
        raise ConfigurationError(
            f"expected_version must be an int >= 0 or an ExpectedVersion, got {expected!r}"
        )
    return expected
