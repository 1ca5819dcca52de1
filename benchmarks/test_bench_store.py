"""Suites 1, 2, 5 and 6: appends, loads, throughput and single-event latency vs the raw driver.

Each eventlab benchmark runs after its raw-driver baseline in the same session, on the same
server and the same collection layout (the store's indexes), and records its ratio to it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore
from eventlab._event_codec import event_body

from .budgets import BUDGETS_SECONDS, RATIO_TARGETS
from .conftest import MEDIANS, make_events, make_store, record

Run = Callable[[Awaitable[Any]], Any]
ROUNDS = 15
LOAD_ROUNDS = 25


@pytest.fixture(scope="module")
def store(connection: MongoConnectionManager, registry: EventRegistry, run: Run) -> MongoEventStore:
    return make_store(connection, registry, run, "transactional", "bench_events")


def raw_documents(store: MongoEventStore, count: int, first_position: int) -> list[dict[str, Any]]:
    """The documents eventlab would write, for the raw driver to insert."""
    sid = f"raw-{uuid.uuid4().hex}"
    events = make_events(count)
    docs = []
    for i, event in enumerate(events):
        stored = store.registry.to_stored(
            event, aggregate_id=sid, aggregate_type="Inventory", version=i + 1
        )
        body = event_body(stored)
        body.update(position=first_position + i, recorded_at=stored.occurred_at)
        docs.append(body)
    return docs


_raw_positions = iter(range(10**9, 2 * 10**9, 10**5))


def check_budget(benchmark: Any, info: dict[str, Any], name: str) -> None:
    """Assert the seed budget where the server can meet it at all.

    A budget is a claim about eventlab's cost; on a server where the raw driver alone already
    exceeds it (the embedded server is a Python process), the budget measures the server, so the
    result is recorded as such and the ratio target carries the assertion.
    """
    budget = BUDGETS_SECONDS[name]
    median = benchmark.stats.stats.median
    raw = info.get("baseline_median_ms")
    if raw is not None and raw / 1e3 >= budget:
        benchmark.extra_info["budget_status"] = f"server-bound: raw driver {raw:.0f} ms"
        return
    benchmark.extra_info["budget_status"] = "met" if median < budget else "MISSED"
    assert median < budget, f"{name}: median {median * 1e3:.1f} ms over budget {budget * 1e3} ms"


def check_ratio(benchmark: Any, info: dict[str, Any], name: str, *, server_noise: bool) -> None:
    """Assert the ratio target; see benchmarks/README.md for why load-1000 is recorded only on
    the embedded server (its medians for the *same* raw query vary by ±40% between runs)."""
    target = RATIO_TARGETS[name]
    met = info["ratio"] <= target
    benchmark.extra_info["ratio_status"] = "met" if met else "missed"
    if server_noise and not os.environ.get("EVENTLAB_TEST_MONGODB_URI"):
        return
    assert met, f"{name}: {info['ratio']}x raw, target {target}x"


# -- 1. append-100 ----------------------------------------------------------------------------


def test_append_100_raw_insert_many_in_transaction(
    benchmark: Any, store: MongoEventStore, run: Run, server_label: str
) -> None:
    collection = store.events
    client = store.connection.client

    async def insert(docs: list[dict[str, Any]]) -> None:
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_many(docs, session=session)

    benchmark.pedantic(
        lambda docs: run(insert(docs)),
        setup=lambda: ((raw_documents(store, 100, next(_raw_positions)),), {}),
        rounds=ROUNDS,
        warmup_rounds=2,
    )
    MEDIANS["append-100"] = benchmark.stats.stats.median
    record(benchmark, "append-100-raw", server_label)


def test_append_100_save_events(
    benchmark: Any, store: MongoEventStore, run: Run, server_label: str
) -> None:
    benchmark.pedantic(
        lambda sid, events: run(store.save_events(sid, events, expected_version=0)),
        setup=lambda: ((f"bench-{uuid.uuid4().hex}", make_events(100)), {}),
        rounds=ROUNDS,
        warmup_rounds=2,
    )
    info = record(benchmark, "append-100", server_label, baseline="append-100")
    check_budget(benchmark, info, "append-100")
    check_ratio(benchmark, info, "append-100", server_noise=False)


# -- 2. load-1000 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_stream(store: MongoEventStore, run: Run) -> str:
    sid = f"long-{uuid.uuid4().hex}"
    events = make_events(1000)
    for start in range(0, 1000, 250):
        run(store.save_events(sid, events[start : start + 250], expected_version=start))
    return sid


def test_load_1000_raw_find(
    benchmark: Any, store: MongoEventStore, long_stream: str, run: Run, server_label: str
) -> None:
    collection = store.events

    async def load() -> list[dict[str, Any]]:
        return await collection.find({"aggregate_id": long_stream}).sort("version", 1).to_list(None)

    docs = benchmark.pedantic(lambda: run(load()), rounds=LOAD_ROUNDS, warmup_rounds=3)
    assert len(docs) == 1000
    MEDIANS["load-1000"] = benchmark.stats.stats.median
    record(benchmark, "load-1000-raw", server_label)


def test_load_1000_stored_events(
    benchmark: Any, store: MongoEventStore, long_stream: str, run: Run, server_label: str
) -> None:
    events = benchmark.pedantic(
        lambda: run(store.get_events(long_stream)), rounds=LOAD_ROUNDS, warmup_rounds=3
    )
    assert len(events) == 1000
    record(benchmark, "load-1000-stored", server_label, baseline="load-1000")


def test_load_1000_typed_events(
    benchmark: Any, store: MongoEventStore, long_stream: str, run: Run, server_label: str
) -> None:
    events = benchmark.pedantic(
        lambda: run(store.load_events(long_stream)), rounds=LOAD_ROUNDS, warmup_rounds=3
    )
    assert len(events) == 1000 and type(events[0]).__name__ == "ItemReserved"
    info = record(benchmark, "load-1000", server_label, baseline="load-1000")
    check_budget(benchmark, info, "load-1000")
    check_ratio(benchmark, info, "load-1000", server_noise=True)


# -- 6. single-event append -------------------------------------------------------------------


def test_single_append_raw_insert_one(
    benchmark: Any, store: MongoEventStore, run: Run, server_label: str
) -> None:
    collection = store.events
    benchmark.pedantic(
        lambda doc: run(collection.insert_one(doc)),
        setup=lambda: ((raw_documents(store, 1, next(_raw_positions))[0],), {}),
        rounds=40,
        warmup_rounds=3,
    )
    MEDIANS["single-append"] = benchmark.stats.stats.median
    record(benchmark, "single-append-raw", server_label)


def test_single_append_save_events(
    benchmark: Any, store: MongoEventStore, run: Run, server_label: str
) -> None:
    benchmark.pedantic(
        lambda sid, events: run(store.save_events(sid, events, expected_version=0)),
        setup=lambda: ((f"one-{uuid.uuid4().hex}", make_events(1)), {}),
        rounds=40,
        warmup_rounds=3,
    )
    info = record(benchmark, "single-append", server_label, baseline="single-append")
    assert info["ratio"] > 0


# -- 5. throughput: 8 concurrent writers, 100-event batches -----------------------------------

WRITERS = 8


def _throughput(benchmark: Any, name: str, server: str, baseline: str | None) -> None:
    events = WRITERS * 100
    info = record(benchmark, name, server, baseline=baseline)
    info["events_per_second"] = round(events / benchmark.stats.stats.median)
    benchmark.extra_info.update(info)


def test_throughput_raw_insert_many(
    benchmark: Any, store: MongoEventStore, run: Run, server_label: str
) -> None:
    collection = store.events
    client = store.connection.client

    async def one(docs: list[dict[str, Any]]) -> None:
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_many(docs, session=session)

    async def all_writers(batches: list[list[dict[str, Any]]]) -> None:
        await asyncio.gather(*(one(docs) for docs in batches))

    benchmark.pedantic(
        lambda batches: run(all_writers(batches)),
        setup=lambda: (
            ([raw_documents(store, 100, next(_raw_positions)) for _ in range(WRITERS)],),
            {},
        ),
        rounds=5,
        warmup_rounds=1,
    )
    MEDIANS["throughput"] = benchmark.stats.stats.median
    _throughput(benchmark, "throughput-raw", server_label, None)


@pytest.mark.parametrize("positions", ["transactional", "preallocated"])
def test_throughput_save_events(
    benchmark: Any,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
    server_label: str,
    positions: str,
) -> None:
    store = make_store(connection, registry, run, positions, f"bench_tp_{positions}")

    async def all_writers(batches: list[tuple[str, list[Any]]]) -> None:
        await asyncio.gather(*(store.save_events(sid, evs, 0) for sid, evs in batches))

    benchmark.pedantic(
        lambda batches: run(all_writers(batches)),
        setup=lambda: (
            ([(f"tp-{uuid.uuid4().hex}", make_events(100)) for _ in range(WRITERS)],),
            {},
        ),
        rounds=5,
        warmup_rounds=1,
    )
    _throughput(benchmark, f"throughput-{positions}", server_label, "throughput")
