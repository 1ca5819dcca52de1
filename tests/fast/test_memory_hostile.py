"""Hostile input to the in-memory backend's new entry points (the store's options, its
strategy migration, its log's abandon, the DCB stores' constructors): a typed error that names
the problem, and nothing written. (The DCB port's own hostile calls are in
:class:`eventlab.contracts.DCBHostileContract`, run by every backend.)"""

from __future__ import annotations

from typing import Any

import pytest

from eventlab import ConfigurationError, EventlabError
from eventlab.dcb import MongoDCBStore
from eventlab.memory import MemoryBackend, MemoryDCBStore, MemoryEventStore

OPERATOR: Any = {"$ne": None}

OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("positions an operator", {"positions": OPERATOR}, "positions"),
    ("positions misspelt", {"positions": "PREALLOCATED"}, "positions"),
    ("positions empty", {"positions": ""}, "positions"),
    ("positions an int", {"positions": 1}, "positions"),
    ("name an operator", {"name": OPERATOR}, "name"),
    ("name empty", {"name": ""}, "name"),
    ("name an int", {"name": 123}, "name"),
    ("name with NUL", {"name": "a\x00b"}, "name"),
    ("name of 10k characters", {"name": "n" * 10_000}, "name"),
    ("budget negative", {"transaction_time_budget": -1}, "transaction_time_budget"),
    ("budget zero", {"transaction_time_budget": 0}, "transaction_time_budget"),
    ("budget huge", {"transaction_time_budget": 10**400}, "transaction_time_budget"),
    ("budget not a number", {"transaction_time_budget": float("nan")}, "transaction_time_budget"),
    ("budget a string", {"transaction_time_budget": "5"}, "transaction_time_budget"),
    ("budget a bool", {"transaction_time_budget": True}, "transaction_time_budget"),
    ("budget an operator", {"transaction_time_budget": OPERATOR}, "transaction_time_budget"),
    ("registry a dict", {"registry": OPERATOR}, "registry"),
]


@pytest.mark.parametrize(("label", "options", "named"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_the_store_refuses_hostile_options_and_writes_nothing(
    label: str, options: dict[str, Any], named: str
) -> None:
    backend = MemoryBackend()
    with pytest.raises(ConfigurationError, match=named):
        MemoryEventStore(backend, **options)
    assert backend.database.table_names() == []


def test_a_backend_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        MemoryEventStore(OPERATOR)


async def test_a_store_keeps_its_strategy_against_a_constructor_asking_the_other() -> None:
    backend = MemoryBackend()
    store = MemoryEventStore(backend, positions="preallocated")
    await store.append("s", [], 0)
    with pytest.raises(ConfigurationError, match=r"'transactional'.*'preallocated'"):
        MemoryEventStore(backend, positions="transactional")
    assert MemoryEventStore(backend).position_strategy == "preallocated"
    assert (await store.log.head()).strategy == "preallocated"


@pytest.mark.parametrize("bad", [OPERATOR, "PREALLOCATED", None, 1, ""])
async def test_a_migration_to_no_strategy_is_refused(bad: Any) -> None:
    store = MemoryEventStore(positions="preallocated")
    with pytest.raises(ConfigurationError, match="positions"):
        await store.change_position_strategy(bad)
    assert (await store.log.head()).strategy == "preallocated"


@pytest.mark.parametrize("bad", [[OPERATOR], [-1], [0], [2**64], [True], "12", [1.5]])
async def test_abandoning_what_is_not_a_position_is_refused(bad: Any) -> None:
    store = MemoryEventStore(positions="preallocated")
    with pytest.raises(EventlabError, match="position"):
        await store.log.abandon(bad)
    read = await store.log.read(0, 100, every_position=True)
    assert read.present == frozenset() and read.abandoned == ()


@pytest.mark.parametrize("bad", [OPERATOR, None, "store", MemoryBackend()])
def test_dcb_stores_refuse_what_is_not_their_store(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="MemoryEventStore"):
        MemoryDCBStore(bad)
    with pytest.raises(ConfigurationError, match="MongoEventStore"):
        MongoDCBStore(bad)
    with pytest.raises(ConfigurationError, match="MongoEventStore"):
        MongoDCBStore(MemoryEventStore())  # type: ignore[arg-type]


async def test_stream_ids_as_mongodb_lists_them() -> None:
    from eventlab.contracts import contract_event

    store = MemoryEventStore(positions="preallocated")
    for sid in ("b", "a"):
        await store.append(sid, [contract_event(sid)], 0)
    await store.log.abandon([(await store.log.head()).position + 1])  # a tombstone is no stream
    assert await store.stream_ids() == ["a", "b"] == await store.stream_ids("Contract")
    assert await store.stream_ids("Other") == []
    with pytest.raises(ConfigurationError, match="aggregate_type"):
        await store.stream_ids(OPERATOR)
