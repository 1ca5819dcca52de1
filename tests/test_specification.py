"""Hostile input never becomes a MongoDB operator."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bson import Code, Regex
from hypothesis import strategies as st
from pydantic import BaseModel

from eventlab import MongoConnectionManager, MongoRepository, QueryOptions
from eventlab.specification import (
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


async def test_literal_values_match_only_literally(connection: MongoConnectionManager) -> None:
    repo = MongoRepository(connection=connection, collection="docs", model_cls=Doc, mapper=None)
    await repo.add(Doc(id="a", name="alice", data={"k": 1}))
    await repo.add(Doc(id="b", name="a.*", data={}))
    # a dict value compares as a whole document, never as an operator
    assert [
        d.id
        for d in await repo.search(
            QueryOptions().with_specification(
                SpecificationBuilder().where("data", "eq", {"k": 1}).build()
            )
        )
    ] == ["a"]
    # regex metacharacters are escaped: "a.*" matches only the literal prefix
    hits = await repo.search(
        QueryOptions().with_specification(
            SpecificationBuilder().where("name", "startswith", "a.*").build()
        )
    )
    assert [d.id for d in hits] == ["b"]
    assert (
        await repo.search(
            QueryOptions().with_specification(
                SpecificationBuilder().where("name", "startswith", ".").build()
            )
        )
        == []
    )
    assert (
        await repo.search(
            QueryOptions().with_specification(
                SpecificationBuilder().where("name", "in", ["^a", ".*"]).build()
            )
        )
        == []
    )
