"""Safe query specifications: user-supplied fields and values can never become operators.

Field names and values in search screens come from users. Everything here is built so that the
only MongoDB operators in a query are the ones this module writes itself:

* a field path must be a non-empty dot path of non-empty segments, none starting with ``$``,
  none containing NUL;
* the operator must be one of :data:`OPERATORS`;
* a value is data, never a query: equality is written as ``{"$eq": value}``, which MongoDB
  compares literally even when ``value`` is a dict; dict values whose keys start with ``$`` are
  rejected anyway, as are regular-expression and JavaScript-code objects; ``startswith`` escapes
  its text. ``$where``, ``$function``, ``$expr`` and ``$regex`` from input are therefore
  impossible.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bson import Code, Regex

from ._core.bson_values import to_bson_value
from ._core.errors import ConfigurationError, EventlabError, InvalidSpecificationError

OPERATORS = frozenset(
    {
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "in",
        "not_in",
        "contains",
        "all",
        "exists",
        "startswith",
        "between",
        "size",
    }
)
"""Operators a :class:`Condition` accepts."""


FieldMap = Callable[[str], str]


def _identity(path: str) -> str:
    return path


def check_field_path(path: object) -> str:
    """Return ``path`` if it is a safe dot path, else raise :class:`InvalidSpecificationError`."""
    if not isinstance(path, str) or not path:
        raise InvalidSpecificationError(f"field path must be a non-empty string, got {path!r}")
    if "\x00" in path:
        raise InvalidSpecificationError(f"field path {path!r} contains a NUL character")
    for segment in path.split("."):
        if not segment:
            raise InvalidSpecificationError(f"field path {path!r} has an empty segment")
        if segment.startswith("$"):
            raise InvalidSpecificationError(
                f"field path {path!r}: segment {segment!r} starts with '$' (an operator)"
            )
    return path


def _literal(value: Any, where: str) -> Any:
    """``value`` as BSON data, refusing anything MongoDB could execute or pattern-match."""
    if isinstance(value, Regex | re.Pattern):
        raise InvalidSpecificationError(f"{where}: regular expressions are not values")
    if isinstance(value, Code):
        raise InvalidSpecificationError(f"{where}: JavaScript code is not a value")
    if isinstance(value, datetime) and value.tzinfo is None:
        raise InvalidSpecificationError(f"{where}: naive datetime; use an aware datetime")
    try:
        converted = to_bson_value(value, where)
    except EventlabError as exc:
        raise InvalidSpecificationError(str(exc)) from exc
    _reject_nested_code(converted, where)
    return converted


def _reject_nested_code(value: Any, where: str) -> None:
    if isinstance(value, Regex | re.Pattern | Code):
        raise InvalidSpecificationError(f"{where}: contains a regex or code object")
    if isinstance(value, dict):
        for item in value.values():
            _reject_nested_code(item, where)
    elif isinstance(value, list):
        for item in value:
            _reject_nested_code(item, where)


def _sequence(value: Any, where: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise InvalidSpecificationError(f"{where}: expects a list of values, got {value!r:.60}")
    return [_literal(item, f"{where}[{i}]") for i, item in enumerate(value)]


class Specification:
    """A composable condition: ``a & b``, ``a | b``, ``~a``."""

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        """The MongoDB filter document; ``field_map`` renames entity fields to document paths."""
        raise NotImplementedError

    def __and__(self, other: Specification) -> Specification:
        return And((self, _spec(other)))

    def __or__(self, other: Specification) -> Specification:
        return Or((self, _spec(other)))

    def __invert__(self) -> Specification:
        return Not(self)


def _spec(value: object) -> Specification:
    if not isinstance(value, Specification):
        raise InvalidSpecificationError(f"expected a Specification, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Condition(Specification):
    """``field op value``, validated on construction."""

    field: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        check_field_path(self.field)
        if self.op not in OPERATORS:
            raise InvalidSpecificationError(
                f"unknown operator {self.op!r}; use one of {sorted(OPERATORS)}"
            )
        object.__setattr__(self, "value", self._checked_value())

    def _checked_value(self) -> Any:
        where = f"{self.field} {self.op}"
        op, value = self.op, self.value
        if op in ("in", "not_in", "all"):
            return _sequence(value, where)
        if op == "between":
            bounds = _sequence(value, where)
            if len(bounds) != 2:
                raise InvalidSpecificationError(f"{where}: expects (low, high)")
            return bounds
        if op == "exists":
            if not isinstance(value, bool):
                raise InvalidSpecificationError(f"{where}: expects True or False")
            return value
        if op == "startswith":
            if not isinstance(value, str):
                raise InvalidSpecificationError(f"{where}: expects a string")
            return value
        if op == "size":
            if type(value) is not int or value < 0:
                raise InvalidSpecificationError(f"{where}: expects a non-negative int")
            return value
        return _literal(value, where)

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        path = field_map(self.field)
        op, value = self.op, self.value
        if op == "eq":
            return {path: {"$eq": value}}
        if op in ("ne", "gt", "gte", "lt", "lte", "in", "all", "exists", "size"):
            return {path: {f"${op}": value}}
        if op == "not_in":
            return {path: {"$nin": value}}
        if op == "contains":
            return {path: {"$elemMatch": {"$eq": value}}}
        if op == "startswith":
            return {path: {"$regex": "^" + re.escape(value)}}
        low, high = value  # between
        return {path: {"$gte": low, "$lte": high}}


@dataclass(frozen=True, slots=True)
class And(Specification):
    parts: tuple[Specification, ...]

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        return {"$and": [part.to_query(field_map) for part in self.parts]}


@dataclass(frozen=True, slots=True)
class Or(Specification):
    parts: tuple[Specification, ...]

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        return {"$or": [part.to_query(field_map) for part in self.parts]}


@dataclass(frozen=True, slots=True)
class Not(Specification):
    part: Specification

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        return {"$nor": [self.part.to_query(field_map)]}


class MatchAll(Specification):
    """The empty specification: every document."""

    def to_query(self, field_map: FieldMap = _identity) -> dict[str, Any]:
        return {}


class SpecificationBuilder:
    """Fluent building: ``SpecificationBuilder().where("status", "eq", "pending").build()``.

    Consecutive ``where`` calls are AND-ed; ``or_where`` starts an alternative group.
    """

    def __init__(self) -> None:
        self._groups: list[list[Specification]] = [[]]

    def where(self, field: str, op: str, value: Any = None) -> SpecificationBuilder:
        self._groups[-1].append(Condition(field, op, value))
        return self

    def or_where(self, field: str, op: str, value: Any = None) -> SpecificationBuilder:
        self._groups.append([Condition(field, op, value)])
        return self

    def build(self) -> Specification:
        groups = [g for g in self._groups if g]
        if not groups:
            return MatchAll()
        conjunctions = [g[0] if len(g) == 1 else And(tuple(g)) for g in groups]
        return conjunctions[0] if len(conjunctions) == 1 else Or(tuple(conjunctions))


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """Specification, ordering, pagination and projection of a search (immutable)."""

    specification: Specification = field(default_factory=MatchAll)
    ordering: tuple[tuple[str, int], ...] = ()
    limit: int | None = None
    offset: int = 0
    projection: tuple[str, ...] | None = None

    def with_specification(self, specification: Specification, **_: Any) -> QueryOptions:
        return replace(self, specification=_spec(specification))

    def with_ordering(self, *fields: str) -> QueryOptions:
        """``"-created_at"`` sorts descending, ``"total"`` ascending."""
        order = []
        for name in fields:
            direction = -1 if isinstance(name, str) and name.startswith("-") else 1
            path = name[1:] if direction == -1 else name
            order.append((check_field_path(path), direction))
        return replace(self, ordering=tuple(order))

    def with_pagination(self, limit: int | None = None, offset: int = 0) -> QueryOptions:
        if limit is not None and (type(limit) is not int or not 1 <= limit < 2**63):
            raise ConfigurationError(f"limit must be a positive 64-bit int, got {limit!r:.40}")
        if type(offset) is not int or not 0 <= offset < 2**63:
            raise ConfigurationError(
                f"offset must be a non-negative 64-bit int, got {offset!r:.40}"
            )
        return replace(self, limit=limit, offset=offset)

    def with_projection(self, *fields: str) -> QueryOptions:
        return replace(self, projection=tuple(check_field_path(f) for f in fields))
