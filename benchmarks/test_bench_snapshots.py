"""Suite 8, snapshots: loading a 10,000-event aggregate from a snapshot vs replaying it all.

The aggregate snapshots every 100 events; the benchmark takes the worst case, a snapshot 99
events behind the head (version 9,901), so a load reads one snapshot and 99 events. The
baseline is the full replay of the same stream (10,000 typed events) in the same run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from eventlab import (
    AggregateRoot,
    AggregateStore,
    EventRegistry,
    MongoConnectionManager,
    MongoEventStore,
    MongoSnapshotStore,
    applies,
)

from ._paired import assert_ratio, paired
from .conftest import ItemReserved, make_events, make_store

Run = Callable[[Awaitable[Any]], Any]
LENGTH = 10_000
SNAPSHOT_EVERY = 100


class Inventory(AggregateRoot):
    aggregate_type = "Inventory"
    snapshot_every = SNAPSHOT_EVERY

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.reserved = 0
        self.value = Decimal("0")
        self.warehouse = ""

    @applies(ItemReserved)
    def _reserved(self, event: ItemReserved) -> None:
        self.reserved += event.quantity
        self.value += event.unit_price * event.quantity
        self.warehouse = event.warehouse


@pytest.fixture(scope="module")
def long_stream(
    connection: MongoConnectionManager, registry: EventRegistry, run: Run
) -> tuple[MongoEventStore, MongoSnapshotStore, str]:
    store = make_store(connection, registry, run, "transactional", "bench_snapshots")
    sid = f"long-{uuid.uuid4().hex}"
    events = []
    for version, event in enumerate(make_events(LENGTH), start=1):
        stored = registry.to_stored(
            event, aggregate_id=sid, aggregate_type="Inventory", version=version
        )
        events.append(stored.with_position(version, stored.occurred_at))
    run(store.restore(events, chunk_size=2000))
    snapshots = MongoSnapshotStore(connection, collection="bench_snapshots_snapshots")
    at = LENGTH - SNAPSHOT_EVERY + 1  # the worst case: 99 events after the newest snapshot
    partial = Inventory.rebuild(sid, [registry.to_domain(e, unknown="raise") for e in events[:at]])
    assert run(AggregateStore(store, snapshots=snapshots).snapshot(partial))
    return store, snapshots, sid


def test_snapshot_load_of_a_10k_event_aggregate(
    benchmark: Any, long_stream: tuple[MongoEventStore, MongoSnapshotStore, str], run: Run,
    server_label: str,
) -> None:  # fmt: skip
    """Load from the newest snapshot (+99 events) vs a full replay of 10,000 events."""
    store, snapshots, sid = long_stream
    with_snapshots = AggregateStore(store, snapshots=snapshots)
    without = AggregateStore(store)
    loaded = paired(
        benchmark,
        name="snapshot-load-10k",
        server=server_label,
        target=lambda: run(with_snapshots.load(Inventory, sid)),
        baseline=lambda: run(without.load(Inventory, sid)),
        rounds=5,
        warmup_rounds=1,
    )
    full = run(without.load(Inventory, sid))
    assert loaded.state() == full.state() and loaded.version == LENGTH
    info = benchmark.extra_info
    info["speedup"] = round(info["baseline_median_ms"] / info["median_ms"], 1)
    assert_ratio(benchmark)
