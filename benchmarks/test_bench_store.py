"""Suites 1, 2, 5 and 6 against the server: appends, loads, throughput, single-event latency.

Every benchmark is paired with its raw-driver baseline (see ``_paired.py``): the same documents,
the same collection and indexes, the same server, measured in alternation.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import pytest

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore

from ._paired import assert_budget, assert_ratio, paired
from .conftest import make_events, make_store, stored_documents

Run = Callable[[Awaitable[Any]], Any]
WRITERS = 8


@pytest.fixture(scope="module")
def store(connection: MongoConnectionManager, registry: EventRegistry, run: Run) -> MongoEventStore:
    return make_store(connection, registry, run, "transactional", "bench_events")


_raw_positions = count(10**9, 10**5)


def raw_documents(store: MongoEventStore, n: int) -> list[dict[str, Any]]:
    """The documents eventlab would write for ``n`` new events, for the raw driver to insert.

    Raw positions live far above eventlab's so both can share one collection and its indexes.
    """
    return stored_documents(store.registry, n, next(_raw_positions))


def raw_transaction_insert(
    store: MongoEventStore,
) -> Callable[[list[dict[str, Any]]], Awaitable[None]]:
    client, collection = store.connection.client, store.events

    async def insert(docs: list[dict[str, Any]]) -> None:
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_many(docs, session=session)

    return insert


# -- 1. append-100 ----------------------------------------------------------------------------


def test_append_100(benchmark: Any, store: MongoEventStore, run: Run, server_label: str) -> None:
    """``append`` of 100 events vs ``insert_many`` of the same documents in a transaction."""
    raw_insert = raw_transaction_insert(store)
    paired(
        benchmark,
        name="append-100",
        server=server_label,
        target=lambda sid, events: run(store.append(sid, events, expected_version=0)),
        prepare=lambda: (f"bench-{uuid.uuid4().hex}", make_events(100)),
        baseline=lambda docs: run(raw_insert(docs)),
        prepare_baseline=lambda: (raw_documents(store, 100),),
        rounds=20,
        settle=0.05,
    )
    assert_budget(benchmark)
    assert_ratio(benchmark)


# -- 2. load-1000 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_stream(store: MongoEventStore, run: Run) -> str:
    sid = f"long-{uuid.uuid4().hex}"
    events = make_events(1000)
    for start in range(0, 1000, 250):
        run(store.append(sid, events[start : start + 250], expected_version=start))
    return sid


def _raw_find(store: MongoEventStore, sid: str) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    collection = store.events
    return lambda: collection.find({"aggregate_id": sid}).sort("version", 1).to_list(None)


def test_load_1000_typed(
    benchmark: Any, store: MongoEventStore, long_stream: str, run: Run, server_label: str
) -> None:
    """``read_domain_events`` (domain events, upcast) vs raw ``find().sort()``."""
    raw_find = _raw_find(store, long_stream)
    events = paired(
        benchmark,
        name="load-1000",
        server=server_label,
        target=lambda: run(store.read_domain_events(long_stream)),
        baseline=lambda: run(raw_find()),
        rounds=40,
        warmup_rounds=3,
        settle=0.05,
    )
    assert len(events) == 1000 and type(events[0]).__name__ == "ItemReserved"
    assert_budget(benchmark)
    assert_ratio(benchmark)


def test_load_1000_stored(
    benchmark: Any, store: MongoEventStore, long_stream: str, run: Run, server_label: str
) -> None:
    """``read_stream`` (StoredEvent records, no typing) vs the same raw find."""
    raw_find = _raw_find(store, long_stream)
    events = paired(
        benchmark,
        name="load-1000-stored",
        server=server_label,
        target=lambda: run(store.read_stream(long_stream)),
        baseline=lambda: run(raw_find()),
        rounds=20,
        warmup_rounds=3,
        settle=0.05,
    )
    assert len(events) == 1000 and events[-1].version == 1000


# -- 6. single-event append -------------------------------------------------------------------


def test_single_append(benchmark: Any, store: MongoEventStore, run: Run, server_label: str) -> None:
    """The command-handler case: one event in its own transaction vs a raw ``insert_one``."""
    collection = store.events
    paired(
        benchmark,
        name="single-append",
        server=server_label,
        target=lambda sid, events: run(store.append(sid, events, expected_version=0)),
        prepare=lambda: (f"one-{uuid.uuid4().hex}", make_events(1)),
        baseline=lambda doc: run(collection.insert_one(doc)),
        prepare_baseline=lambda: (raw_documents(store, 1)[0],),
        rounds=40,
        warmup_rounds=3,
    )
    assert benchmark.extra_info["ratio"] > 0


# -- 5. throughput: 8 concurrent writers, 100-event batches -----------------------------------


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
def test_throughput(
    benchmark: Any,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
    server_label: str,
    positions: str,
) -> None:
    """8 writers x 100 events at once, vs 8 raw transactional ``insert_many`` at once."""
    store = make_store(connection, registry, run, positions, f"bench_tp_{positions}")
    raw_insert = raw_transaction_insert(store)

    async def eventlab_writers(batches: list[tuple[str, list[Any]]]) -> None:
        await asyncio.gather(*(store.append(sid, evs, 0) for sid, evs in batches))

    async def raw_writers(batches: list[list[dict[str, Any]]]) -> None:
        await asyncio.gather(*(raw_insert(docs) for docs in batches))

    paired(
        benchmark,
        name=f"throughput-{positions}",
        server=server_label,
        target=lambda batches: run(eventlab_writers(batches)),
        prepare=lambda: ([(f"tp-{uuid.uuid4().hex}", make_events(100)) for _ in range(WRITERS)],),
        baseline=lambda batches: run(raw_writers(batches)),
        prepare_baseline=lambda: ([raw_documents(store, 100) for _ in range(WRITERS)],),
        rounds=5,
        warmup_rounds=1,
    )
    info = benchmark.extra_info
    info["events_per_second"] = round(WRITERS * 100 / (info["median_ms"] / 1e3))
    info["raw_events_per_second"] = round(WRITERS * 100 / (info["baseline_median_ms"] / 1e3))
    assert info["events_per_second"] > 0
