"""Suite 7, scale: what reads and appends cost as the store grows.

Stores of ``--store-sizes`` events (CI: 10,000; the documented large run adds 100,000), 100
events per stream, written by ``restore``. Every benchmark is paired with the raw driver on the
same store (see ``_paired.py``):

* first vs last page of the log: the last page must cost what the first does (bounded ranges);
* catch-up: the whole log through ``read_all`` vs the raw driver paging by the same ranges;
* subscription catch-up: a catch-up subscription over the whole log vs ``read_all``;
* ``read_frame`` of the whole store vs the floor of the same job (every document, storage
  order, undecoded);
* single and 100-event appends with the store already full.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore, StoredEvent
from eventlab.workbench import read_frame

from ._paired import assert_ratio, paired
from ._verdicts import decide
from .budgets import SCALE_TARGETS
from .conftest import make_events, make_store, stored_documents

Run = Callable[[Awaitable[Any]], Any]
PAGE = 1000
STREAM_LENGTH = 100
_raw_positions = count(10**9, 1000)  # far above eventlab's, so both share the indexes


@pytest.fixture(scope="module")
def scaled(
    store_size: int, connection: MongoConnectionManager, registry: EventRegistry, run: Run
) -> MongoEventStore:
    store = make_store(connection, registry, run, "transactional", f"bench_scale_{store_size}")
    events: list[StoredEvent] = []
    position = 0
    while position < store_size:
        sid = f"scale-{uuid.uuid4().hex}"
        for version, event in enumerate(make_events(STREAM_LENGTH), start=1):
            position += 1
            stored = registry.to_stored(
                event, aggregate_id=sid, aggregate_type="Inventory", version=version
            )
            events.append(stored.with_position(position, stored.occurred_at))
    run(store.restore(events[:store_size], chunk_size=2000))
    return store


def _raw_page(store: MongoEventStore, lo: int) -> Awaitable[list[dict[str, Any]]]:
    query = {"position": {"$gt": lo, "$lte": lo + PAGE}}
    return store.events.find(query, sort=[("position", 1)]).to_list(None)


def test_scale_last_page_vs_first(
    benchmark: Any, scaled: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """The log's last page vs its first: equal cost whatever the store's size."""
    last = store_size - PAGE
    page = paired(
        benchmark,
        name="page-last-vs-first",
        server=server_label,
        target=lambda: run(scaled.read_all(last, max_count=PAGE).to_list()),
        baseline=lambda: run(scaled.read_all(0, max_count=PAGE).to_list()),
        rounds=15,
        warmup_rounds=2,
        settle=0.02,
    )
    assert len(page) == PAGE and page[-1].position == store_size
    benchmark.extra_info["store_size"] = store_size
    assert_ratio(benchmark)


def test_scale_catch_up(
    benchmark: Any, scaled: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """Every event through ``read_all`` vs the raw driver reading the same pages."""

    async def raw_catch_up() -> int:
        seen, lo = 0, 0
        while page := await _raw_page(scaled, lo):
            seen += len(page)
            lo = page[-1]["position"]
        return seen

    async def catch_up() -> int:
        return sum([1 async for _ in scaled.read_all(0)])

    seen = paired(
        benchmark,
        name="catch-up",
        server=server_label,
        target=lambda: run(catch_up()),
        baseline=lambda: run(raw_catch_up()),
        rounds=5,
        warmup_rounds=1,
    )
    assert seen == store_size
    info = benchmark.extra_info
    info["store_size"] = store_size
    info["events_per_second"] = round(store_size / (info["median_ms"] / 1e3))
    info["raw_events_per_second"] = round(store_size / (info["baseline_median_ms"] / 1e3))
    assert_ratio(benchmark)


def test_scale_subscription_catch_up(
    benchmark: Any, scaled: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """A live subscription catching up over the whole log vs ``read_all``: what its change
    stream and its waiting for new events cost on top of reading."""

    async def paged_read() -> int:
        return sum([1 async for _ in scaled.read_all(0, page_size=PAGE)])

    async def subscription() -> int:
        seen = 0
        async with scaled.subscribe(page_size=PAGE) as live:
            async for _ in live:
                seen += 1
                if seen == store_size:
                    break
        return seen

    seen = paired(
        benchmark,
        name="subscription-catch-up",
        server=server_label,
        target=lambda: run(subscription()),
        baseline=lambda: run(paged_read()),
        rounds=3,
        warmup_rounds=1,
    )
    assert seen == store_size
    info = benchmark.extra_info
    info["store_size"] = store_size
    info["events_per_second"] = round(store_size / (info["median_ms"] / 1e3))
    info["read_all_events_per_second"] = round(store_size / (info["baseline_median_ms"] / 1e3))
    assert_ratio(benchmark)


def test_scale_frame(
    benchmark: Any, scaled: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """``read_frame`` of the whole store vs the floor of the same job, decided: every
    document sent by the server in storage order (``$natural``, as the frame scans) and left
    undecoded (``RawBSONDocument``), in batches of 10,000. The driver's decoded read (a cursor
    in position order to dicts) is recorded beside it."""
    raw = scaled.events.with_options(codec_options=CodecOptions(document_class=RawBSONDocument))

    async def undecoded() -> int:
        return len(await raw.find({}, hint=[("$natural", 1)], batch_size=10_000).to_list(None))

    frame = paired(
        benchmark,
        name="frame-vs-floor",
        server=server_label,
        target=lambda: run(read_frame(scaled, progress=False)),
        baseline=lambda: run(undecoded()),
        rounds=5,
        warmup_rounds=1,
    )
    assert len(frame) == store_size and "payload.location.bin.row" in frame.columns
    assert frame["position"].is_monotonic_increasing
    info = benchmark.extra_info
    info["store_size"] = store_size
    info["events_per_second"] = round(store_size / (info["median_ms"] / 1e3))
    decoded = []
    for _ in range(3):
        started = time.perf_counter()
        run(scaled.events.find({}, sort=[("position", 1)]).to_list(None))
        decoded.append(time.perf_counter() - started)
    info["driver_decoded_read_ms"] = round(statistics.median(decoded) * 1e3, 1)
    assert_ratio(benchmark)
    if store_size >= 100_000:
        scale = 100_000 / store_size
        decide(
            benchmark,
            "a frame of 100,000 events",
            limit=SCALE_TARGETS["frame-seconds-at-100k"],
            measured=info["median_ms"] / 1e3 * scale,
            unit="s",
            raw=info["baseline_median_ms"] / 1e3 * scale,
        )


def test_scale_filtered_frame(
    benchmark: Any, scaled: MongoEventStore, store_size: int, run: Run, server_label: str
) -> None:
    """A frame of 10 streams (1,000 events) vs the driver reading the same selection: a
    filter costs what it selects, not what the store holds. Recorded, no target: building a
    frame of 1,000 events costs 1.4-1.9x the driver's decoded read of them here."""
    middle = store_size // 2
    streams = sorted(
        run(
            scaled.events.distinct(
                "aggregate_id", {"position": {"$gt": middle, "$lte": middle + 1000}}
            )
        )
    )
    frame = paired(
        benchmark,
        name="filtered-frame",
        server=server_label,
        target=lambda: run(read_frame(scaled, streams=streams, progress=False)),
        baseline=lambda: run(scaled.events.find({"aggregate_id": {"$in": streams}}).to_list(None)),
        rounds=15,
        warmup_rounds=2,
    )
    assert len(frame) == len(streams) * STREAM_LENGTH and set(frame["aggregate_id"]) == set(streams)
    benchmark.extra_info["store_size"] = store_size


def test_scale_frame_cache(
    benchmark: Any,
    scaled: MongoEventStore,
    store_size: int,
    run: Run,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A cached frame: reopened with nothing new (the local Parquet copy only), and refreshed
    after 1,000 new events (the copy plus what came after it)."""
    cache = tmp_path_factory.mktemp("frame-cache")
    run(read_frame(scaled, cache=cache, progress=False))  # the first look fills the cache

    reopened = benchmark.pedantic(
        lambda: run(read_frame(scaled, cache=cache, progress=False)), rounds=5, warmup_rounds=1
    )
    assert len(reopened) == store_size
    info = benchmark.extra_info
    info["store_size"] = store_size
    seconds = benchmark.stats.stats.median
    decide(
        benchmark,
        f"a cached frame reopened ({store_size:,} events)",
        limit=SCALE_TARGETS["cache-reopen-seconds"],
        measured=seconds,
        unit="s",
    )
    head = run(scaled.log.head()).position
    more = []
    sid = f"scale-{uuid.uuid4().hex}"
    for version, event in enumerate(make_events(1000), start=1):
        stored = scaled_registry(scaled).to_stored(
            event, aggregate_id=sid, aggregate_type="Inventory", version=version
        )
        more.append(stored.with_position(head + version, stored.occurred_at))
    run(scaled.restore(more))
    started = time.perf_counter()
    refreshed = run(read_frame(scaled, cache=cache, progress=False))
    refresh = time.perf_counter() - started
    assert len(refreshed) == store_size + 1000
    info["refresh_after_1000_s"] = round(refresh, 3)
    decide(
        benchmark,
        f"a cached frame refreshed after 1,000 new events ({store_size:,})",
        limit=SCALE_TARGETS["cache-refresh-seconds"],
        measured=refresh,
        unit="s",
    )


def scaled_registry(store: MongoEventStore) -> EventRegistry:
    registry: EventRegistry = store.registry
    return registry


@pytest.mark.parametrize("batch", [1, 100])
def test_scale_append(
    benchmark: Any,
    scaled: MongoEventStore,
    store_size: int,
    run: Run,
    server_label: str,
    batch: int,
) -> None:
    """Appends to a store that already holds ``store_size`` events vs the raw insert."""
    client, collection = scaled.connection.client, scaled.events

    async def raw_insert(docs: list[dict[str, Any]]) -> None:
        async with client.start_session() as session, await session.start_transaction():
            await collection.insert_many(docs, session=session)

    paired(
        benchmark,
        name=f"append-{batch}-at-scale",
        server=server_label,
        target=lambda sid, events: run(scaled.append(sid, events, expected_version=0)),
        prepare=lambda: (f"at-scale-{uuid.uuid4().hex}", make_events(batch)),
        baseline=lambda docs: run(raw_insert(docs)),
        prepare_baseline=lambda: (stored_documents(scaled.registry, batch, next(_raw_positions)),),
        rounds=15,
        warmup_rounds=2,
        settle=0.02,
    )
    benchmark.extra_info["store_size"] = store_size
    assert benchmark.extra_info["median_ms"] > 0
