"""Ids are values, never operators: hostile ids get a typed error and change nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from bson import Code, Regex
from pydantic import BaseModel

from eventlab import (
    EventlabError,
    InvalidIdError,
    MongoConnectionManager,
    MongoEventStore,
    MongoRepository,
)

from .conftest import make_event, put_one, stream_id

HOSTILE_IDS: list[Any] = [
    {"$gt": ""},
    {"$ne": None},
    {"$regex": ".*"},
    {"$in": ["a", "b"]},
    {"$where": "true"},
    ["a"],
    re.compile(".*"),
    Regex(".*"),
    Code("return true"),
    None,
    True,
    1.5,
    2**63,
    -(2**63) - 1,
    b"bytes",
]


class Item(BaseModel):
    id: str
    name: str


@pytest.fixture
async def repo(connection: MongoConnectionManager) -> MongoRepository[Item]:
    repository = MongoRepository(connection=connection, collection="items", model_cls=Item)
    for n in range(3):
        await repository.add(Item(id=f"item-{n}", name=f"Item {n}"))
    return repository


async def _all_ids(repo: MongoRepository[Item]) -> list[str]:
    return sorted(i.id for i in await repo.list_all())


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=repr)
async def test_repository_refuses_operator_ids(repo: MongoRepository[Item], hostile: Any) -> None:
    before = await _all_ids(repo)
    with pytest.raises(InvalidIdError, match="entity_id"):
        await repo.delete(hostile)
    with pytest.raises(InvalidIdError, match="entity_id"):
        await repo.get(hostile)
    with pytest.raises(InvalidIdError, match=r"entity_ids\[1\]"):
        await repo.list_all(["item-0", hostile])
    assert await _all_ids(repo) == before == ["item-0", "item-1", "item-2"]


async def test_repository_still_takes_plain_ids(repo: MongoRepository[Item]) -> None:
    assert (await repo.get("item-1")) == Item(id="item-1", name="Item 1")
    assert await repo.get("$gt") is None  # a string that looks like an operator is just a value
    assert [i.id for i in await repo.list_all(["item-2", "item-0"])] == ["item-2", "item-0"]
    assert await repo.delete("item-2") is True
    assert await _all_ids(repo) == ["item-0", "item-1"]
    with pytest.raises(InvalidIdError, match="list of ids"):
        await repo.list_all("item-0")  # type: ignore[arg-type]


@pytest.mark.parametrize("hostile", [{"$ne": None}, {"$regex": ".*"}, ["Note"], 5, ""], ids=repr)
async def test_stream_ids_refuses_operator_filters(tx_store: MongoEventStore, hostile: Any) -> None:
    await put_one(tx_store, make_event(stream_id(), 1))
    with pytest.raises(InvalidIdError, match="aggregate_type"):
        await tx_store.stream_ids(hostile)


@pytest.mark.parametrize("hostile", [123, {"$ne": None}, None, "", b"s", ["s"]], ids=repr)
async def test_stream_ids_are_strings_never_coerced(
    tx_store: MongoEventStore, hostile: Any
) -> None:
    sid = stream_id()
    await put_one(tx_store, make_event(sid, 1))
    before = await tx_store.count()
    with pytest.raises(InvalidIdError, match="aggregate_id"):
        await tx_store.append(hostile, [make_event(sid, 2)], 1)
    with pytest.raises(InvalidIdError, match="aggregate_id"):
        await tx_store.read_stream(hostile)
    with pytest.raises(InvalidIdError, match="aggregate_id"):
        await tx_store.get_current_version(hostile)
    assert await tx_store.count() == before
    assert "123" not in await tx_store.stream_ids()


def test_the_error_is_an_eventlab_error() -> None:
    assert issubclass(InvalidIdError, EventlabError) and issubclass(InvalidIdError, ValueError)
