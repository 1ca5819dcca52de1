# ruff: noqa: E501  (a table reads best one case per line)
"""Hostile inputs at every entry point of the read side and the edges: subscriptions and
reads of the log, checkpoints and leases, subscribers, projectors, snapshots, the strategy
migration and the log port. Each one is refused with a typed error that names the problem,
and nothing is written."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bson
import pytest

from eventlab import (
    AggregateStore,
    EventlabError,
    MongoCheckpointStore,
    MongoConnectionManager,
    MongoEventStore,
    MongoSnapshotStore,
    Projection,
    Projector,
    Snapshot,
    StoredEvent,
    Subscriber,
)
from eventlab._core.bson_values import CODEC_OPTIONS
from eventlab._mongo.process_registry import COLLECTION as REGISTRY
from eventlab.samples import Order, OrderTotals

from .conftest import make_event, put, stream_id

BIG = 2**63
OPERATOR = {"$gt": ""}


@dataclass
class Edges:
    store: MongoEventStore
    checkpoints: MongoCheckpointStore
    snapshots: MongoSnapshotStore


async def handler(event: StoredEvent, uow: Any) -> None:
    return None


def snapshot(**fields: Any) -> Snapshot:
    values: dict[str, Any] = {
        "aggregate_id": "order-1",
        "aggregate_type": "Order",
        "version": 1,
        "schema_version": 1,
        "state": {"total": 1},
    }
    return Snapshot(**{**values, **fields})


def long_projection() -> Projection:
    cls = type("LongName", (Projection,), {"name": "p" * 199})
    return cls()  # type: ignore[no-any-return]


CASES: list[tuple[str, Callable[[Edges], Any], str]] = [
    # reading and following the log
    ("subscribe start operator", lambda e: e.store.subscribe(start=OPERATOR), "start"),
    ("subscribe start negative", lambda e: e.store.subscribe(start=-1), "start"),
    ("subscribe start over int64", lambda e: e.store.subscribe(start=BIG), "start"),
    ("subscribe start bool", lambda e: e.store.subscribe(start=True), "start"),  # type: ignore[arg-type]
    ("subscribe page size zero", lambda e: e.store.subscribe(page_size=0), "page_size"),
    ("subscribe page size huge", lambda e: e.store.subscribe(page_size=2**40), "page_size"),
    ("subscribe event types operator", lambda e: e.store.subscribe(event_types=[OPERATOR]), "event type"),
    ("subscribe event types a dict", lambda e: e.store.subscribe(event_types=OPERATOR), "event type"),
    ("subscribe aggregate types ints", lambda e: e.store.subscribe(aggregate_types=[1]), "aggregate type"),  # type: ignore[list-item]
    ("subscribe gap timeout negative", lambda e: e.store.subscribe(gap_timeout=-1), "gap_timeout"),
    ("subscribe gap timeout nan", lambda e: e.store.subscribe(gap_timeout=math.nan), "gap_timeout"),
    ("subscribe poll interval text", lambda e: e.store.subscribe(poll_interval="1"), "poll_interval"),  # type: ignore[arg-type]
    ("subscribe wake operator", lambda e: e.store.subscribe(wake=OPERATOR), "wake"),  # type: ignore[arg-type]
    ("read_all after operator", lambda e: e.store.read_all(OPERATOR), "after_position"),  # type: ignore[arg-type]
    ("read_all max count over int64", lambda e: e.store.read_all(max_count=2**70), "max_count"),
    ("read_all max count zero", lambda e: e.store.read_all(max_count=0), "max_count"),
    # the log port
    ("log read after operator", lambda e: e.store.log.read(OPERATOR, 5), "after"),  # type: ignore[arg-type]
    ("log read until over int64", lambda e: e.store.log.read(0, BIG), "until"),
    ("log read limit huge", lambda e: e.store.log.read(0, 5, limit=2**40), "limit"),
    ("log abandon an operator", lambda e: e.store.log.abandon([OPERATOR]), "position"),  # type: ignore[list-item]
    ("log abandon position zero", lambda e: e.store.log.abandon([0]), "position"),
    ("log abandon over int64", lambda e: e.store.log.abandon([BIG]), "position"),
    # checkpoints and leases
    ("checkpoint name operator", lambda e: e.checkpoints.save(OPERATOR, 1), "name"),  # type: ignore[arg-type]
    ("checkpoint name empty", lambda e: e.checkpoints.save("", 1), "name"),
    ("checkpoint position operator", lambda e: e.checkpoints.save("n", OPERATOR), "position"),  # type: ignore[arg-type]
    ("checkpoint position over int64", lambda e: e.checkpoints.save("n", BIG), "position"),
    ("checkpoint position negative", lambda e: e.checkpoints.save("n", -1), "position"),
    ("checkpoint gaps a string", lambda e: e.checkpoints.save("n", 1, gaps="x"), "gaps"),
    ("checkpoint gaps of strings", lambda e: e.checkpoints.save("n", 1, gaps=["x"]), "gap"),  # type: ignore[list-item]
    ("checkpoint gaps over int64", lambda e: e.checkpoints.save("n", 1, gaps=[2**70]), "gap"),
    ("checkpoint expected operator", lambda e: e.checkpoints.save("n", 1, expected=OPERATOR), "expected"),  # type: ignore[arg-type]
    ("checkpoint owner operator", lambda e: e.checkpoints.save("n", 1, owner=OPERATOR), "owner"),  # type: ignore[arg-type]
    ("checkpoint get operator", lambda e: e.checkpoints.get(OPERATOR), "name"),  # type: ignore[arg-type]
    ("checkpoint delete operator", lambda e: e.checkpoints.delete(OPERATOR), "name"),  # type: ignore[arg-type]
    ("lease name operator", lambda e: e.checkpoints.claim(OPERATOR, "o", lease=1), "name"),  # type: ignore[arg-type]
    ("lease owner empty", lambda e: e.checkpoints.claim("n", "", lease=1), "owner"),
    ("lease negative", lambda e: e.checkpoints.claim("n", "o", lease=-1), "lease"),
    ("lease nan", lambda e: e.checkpoints.claim("n", "o", lease=math.nan), "lease"),
    ("lease a string", lambda e: e.checkpoints.claim("n", "o", lease="3"), "lease"),  # type: ignore[arg-type]
    # subscribers and projectors
    ("subscriber name operator", lambda e: Subscriber(e.store, OPERATOR, handler), "name"),  # type: ignore[arg-type]
    ("subscriber handler not callable", lambda e: Subscriber(e.store, "n", 42), "callable"),  # type: ignore[arg-type]
    ("subscriber lease zero", lambda e: Subscriber(e.store, "n", handler, lease=0), "lease"),
    ("subscriber batch huge", lambda e: Subscriber(e.store, "n", handler, batch_size=2**40), "batch_size"),
    ("subscriber option bad", lambda e: Subscriber(e.store, "n", handler, gap_timeout="x"), "gap_timeout"),
    ("subscriber mode unknown", lambda e: Subscriber(e.store, "n", handler, mode="twice"), "mode"),  # type: ignore[arg-type]
    ("projector of an object", lambda e: Projector(e.store, object()), "Projection"),  # type: ignore[arg-type]
    ("projector batch zero", lambda e: Projector(e.store, OrderTotals(), batch_size=0), "batch_size"),
    ("projector prefix operator", lambda e: Projector(e.store, OrderTotals(), prefix=OPERATOR), "prefix"),  # type: ignore[arg-type]
    ("projector prefix with a dollar", lambda e: Projector(e.store, OrderTotals(), prefix="a$"), "collection"),
    ("projector keep retired negative", lambda e: Projector(e.store, OrderTotals(), keep_retired=-1), "keep_retired"),
    ("projection name of 199 characters", lambda e: Projector(e.store, long_projection()), "200 bytes"),
    # snapshots and loads
    ("snapshot id operator", lambda e: e.snapshots.save(snapshot(aggregate_id=OPERATOR)), "aggregate_id"),
    ("snapshot id an int", lambda e: e.snapshots.save(snapshot(aggregate_id=123)), "aggregate_id"),
    ("snapshot id empty", lambda e: e.snapshots.save(snapshot(aggregate_id="")), "aggregate_id"),
    ("snapshot type operator", lambda e: e.snapshots.save(snapshot(aggregate_type=OPERATOR)), "aggregate_type"),
    ("snapshot version operator", lambda e: e.snapshots.save(snapshot(version={"$gt": 0})), "version"),
    ("snapshot version negative", lambda e: e.snapshots.save(snapshot(version=-1)), "version"),
    ("snapshot version a string", lambda e: e.snapshots.save(snapshot(version="9")), "version"),
    ("snapshot version over int64", lambda e: e.snapshots.save(snapshot(version=BIG)), "version"),
    ("snapshot schema over int64", lambda e: e.snapshots.save(snapshot(schema_version=BIG)), "schema_version"),
    ("snapshot state a list", lambda e: e.snapshots.save(snapshot(state=[1])), "dict"),
    ("snapshot state int over int64", lambda e: e.snapshots.save(snapshot(state={"n": BIG})), "64-bit"),
    ("snapshot state dollar key", lambda e: e.snapshots.save(snapshot(state={"$set": 1})), "$"),
    ("snapshot state of 17 MB", lambda e: e.snapshots.save(snapshot(state={"s": "x" * (17 * 2**20)})), "bytes"),
    ("snapshot save not a snapshot", lambda e: e.snapshots.save({"aggregate_id": "x"}), "Snapshot"),  # type: ignore[arg-type]
    ("snapshot get operator", lambda e: e.snapshots.get(OPERATOR), "aggregate_id"),  # type: ignore[arg-type]
    ("snapshot delete operator", lambda e: e.snapshots.delete(OPERATOR), "aggregate_id"),  # type: ignore[arg-type]
    ("aggregate load operator", lambda e: AggregateStore(e.store).load(Order, OPERATOR), "aggregate_id"),  # type: ignore[arg-type]
    ("aggregate load an int", lambda e: AggregateStore(e.store).load(Order, 123), "aggregate_id"),  # type: ignore[arg-type]
    # the strategy migration
    ("strategy unknown", lambda e: e.store.change_position_strategy("sometimes"), "positions"),  # type: ignore[arg-type]
    ("strategy operator", lambda e: e.store.change_position_strategy(OPERATOR), "positions"),  # type: ignore[arg-type]
]  # fmt: skip


async def _fingerprint(connection: MongoConnectionManager) -> str:
    """Everything stored in the test's database but the process registry, which the heartbeat
    thread renews twice a second whatever the test does (docs/positions.md, crashed writers)."""
    database = connection.database
    digest = hashlib.sha256()
    for name in sorted(set(await database.list_collection_names()) - {REGISTRY}):
        digest.update(name.encode())
        async for doc in database[name].find({}, sort=[("_id", 1)]):
            digest.update(bson.encode(doc, codec_options=CODEC_OPTIONS))
    return digest.hexdigest()


@pytest.fixture
async def edges(connection: MongoConnectionManager) -> Edges:
    store = MongoEventStore(connection)
    sid = stream_id()
    await put(store, [make_event(sid, 1), make_event(sid, 2)])
    checkpoints = MongoCheckpointStore(connection)
    await checkpoints.save("n", 1, expected=0)
    snapshots = MongoSnapshotStore(connection)
    await snapshots.save(snapshot())
    return Edges(store, checkpoints, snapshots)


def test_the_table_covers_every_new_entry_point() -> None:
    assert len(CASES) >= 70 and len({label for label, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("label", "call", "named"), CASES, ids=[c[0] for c in CASES])
async def test_a_hostile_input_is_a_typed_error_and_writes_nothing(
    edges: Edges, connection: MongoConnectionManager, label: str, call: Any, named: str
) -> None:
    before = await _fingerprint(connection)
    with pytest.raises(EventlabError) as caught:
        result = call(edges)
        if hasattr(result, "__await__"):
            await result
        elif hasattr(result, "to_list"):
            await result.to_list()
    assert named.lower() in str(caught.value).lower(), f"{label}: {caught.value}"
    assert await _fingerprint(connection) == before, f"{label}: something was written"
