"""Hostile input never becomes a MongoDB operator."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from bson import Code, Regex
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from eventlab import ConfigurationError, QueryOptions
from eventlab.specification import (
    OPERATORS,
    Condition,
    InvalidSpecificationError,
    MatchAll,
    SpecificationBuilder,
)


class Doc(BaseModel):
    id: str
    name: str
    data: dict[str, Any] = {}


HOSTILE_FIELDS = [
    "$where",
    "$expr",
    "$function",
    "",
    "a..b",
    ".a",
    "a.",
    "a\x00b",
    "a.$b",
    "$",
    "a.$",
    "name.$where",
    42,
    None,
    ["name"],
    "$or",
]

HOSTILE_OPERATORS = ["$eq", "where", "regex", "function", "expr", "$ne", "", "EQ", "text", "mod"]

HOSTILE_VALUES = [
    ("eq", re.compile(".*")),
    ("eq", Regex(".*")),
    ("eq", Code("function() { return true; }")),
    ("ne", {"$where": "sleep(1000)"}),
    ("eq", {"nested": {"$gt": ""}}),
    ("in", [{"$ne": None}]),
    ("in", "not-a-list"),
    ("all", [{"$elemMatch": {"$gt": 0}}]),
    ("between", [1, 2, 3]),
    ("between", 5),
    ("exists", "yes"),
    ("startswith", 123),
    ("size", -1),
    ("eq", datetime(2026, 1, 1)),
    ("eq", object()),
    ("in", [re.compile("x")]),
]


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("field", HOSTILE_FIELDS)
def test_hostile_field_paths_are_rejected(field: Any) -> None:
    with pytest.raises(InvalidSpecificationError):
        Condition(field, "eq", 1)
    with pytest.raises(InvalidSpecificationError):
        QueryOptions().with_ordering(field if isinstance(field, str) and field else "$bad")


@pytest.mark.parametrize("op", HOSTILE_OPERATORS)
def test_unknown_operators_are_rejected(op: str) -> None:
    with pytest.raises(InvalidSpecificationError, match="unknown operator"):
        SpecificationBuilder().where("name", op, "x")


@pytest.mark.parametrize(("op", "value"), HOSTILE_VALUES)
def test_hostile_values_are_rejected(op: str, value: Any) -> None:
    with pytest.raises(InvalidSpecificationError):
        Condition("name", op, value)


@settings(max_examples=300, deadline=None)
@given(
    field=st.text(max_size=12),
    op=st.sampled_from(sorted(OPERATORS)) | st.text(max_size=6),
    value=json_values,
)
def test_no_input_produces_a_dangerous_operator(field: str, op: str, value: Any) -> None:
    try:
        query = Condition(field, op, value).to_query()
    except (InvalidSpecificationError, ConfigurationError):
        return
    dangerous = {"$where", "$function", "$expr", "$accumulator", "$jsonSchema", "$text"}
    assert not (_keys(query) & dangerous)
    # the only $-keys are the ones the module writes
    written = {
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$all",
        "$exists",
        "$size",
        "$elemMatch",
        "$regex",
    }
    assert {k for k in _keys(query) if k.startswith("$")} <= written


def test_builder_composition_and_options() -> None:
    spec = (
        SpecificationBuilder()
        .where("a", "eq", 1)
        .where("b", "gt", 2)
        .or_where("c", "exists", True)
        .build()
    )
    assert spec.to_query() == {
        "$or": [{"$and": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]}, {"c": {"$exists": True}}]
    }
    assert isinstance(SpecificationBuilder().build(), MatchAll)
    assert (~Condition("a", "eq", 1)).to_query() == {"$nor": [{"a": {"$eq": 1}}]}
    with pytest.raises(InvalidSpecificationError):
        Condition("a", "eq", 1) & "x"  # type: ignore[operator]
    with pytest.raises(ConfigurationError):
        QueryOptions().with_pagination(limit=0)
    with pytest.raises(ConfigurationError):
        QueryOptions().with_pagination(offset=-1)
    assert QueryOptions().with_ordering("-x", "y").ordering == (("x", -1), ("y", 1))
