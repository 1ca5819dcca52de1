"""Suite: a scavenge against the server's floor for the same removals (docs/lifecycle.md).

A store of ``store_size`` benchmark events in 10 streams, each truncated to keep its last
tenth: ``lifecycle().scavenge()`` (the whole job: the policies read, each stream's events
looked at page by page without payloads, the removable ones replaced by tombstones in
unordered bulk writes of 1,000) against the raw driver replacing the same documents by the
same tombstones in bulk writes of 1,000, knowing their ids already (no reads: the floor), on a
collection with the same indexes and documents, in alternation (``_paired.py``).

On the embedded server a replacement costs 1.3-2.6 ms (the server's write path, whoever
sends it), so CI runs it at 2,000 events (1,800 removed, about 25 s for the suite);
``EVENTLAB_BENCH_SCAVENGE_EVENTS=100000`` is the documented large run (90,000 removed).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ReplaceOne

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore
from eventlab._core.bson_values import CODEC_OPTIONS
from eventlab._core.event_codec import stored_document
from eventlab._core.lifecycle import scavenged

from ._paired import assert_ratio, paired
from .conftest import make_events

Run = Callable[[Awaitable[Any]], Any]
STREAMS = 10
BATCH = 1000
SIZE_ENV = "EVENTLAB_BENCH_SCAVENGE_EVENTS"
CI_SIZE = 2_000


def _size() -> int:
    size = int(os.environ.get(SIZE_ENV) or CI_SIZE)
    assert size >= 1000 and size % (STREAMS * 100) == 0, f"{SIZE_ENV}: a multiple of 1,000"
    return size


def _documents(registry: EventRegistry, size: int) -> list[dict[str, Any]]:
    """``size`` stored documents, streams interleaved by 100 events (positions from 1)."""
    per_stream = size // STREAMS
    events = make_events(size)
    documents = []
    position = 0
    for block in range(0, per_stream, 100):
        for stream in range(STREAMS):
            for version in range(block + 1, min(block + 100, per_stream) + 1):
                position += 1
                stored = registry.to_stored(
                    events[position - 1],
                    aggregate_id=f"scavenged-{stream}",
                    aggregate_type="Inventory",
                    version=version,
                )
                documents.append(stored_document(stored.with_position(position)))
    return documents


def test_scavenge_vs_raw_replacements(
    benchmark: Any,
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Run,
    server_label: str,
) -> None:
    store_size = _size()
    documents = _documents(registry, store_size)
    per_stream = store_size // STREAMS
    keep_from = per_stream - per_stream // 10 + 1
    doomed = [d for d in documents if d["version"] < keep_from]
    names = (f"bench_scavenge_{n}" for n in itertools.count())
    database = connection.database
    made: list[str] = []

    def dropped_before() -> None:
        """The previous round's collections go (untimed): the server stays the same size."""
        while made:
            run(database.drop_collection(made.pop()))

    def truncated_store() -> tuple[MongoEventStore]:
        name = next(names)
        counters = f"{name}_counters"
        made.extend([name, counters, f"{name}_streams"])
        store = MongoEventStore(connection, events_collection=name, counters_collection=counters)
        run(store.migrate())
        run(store.events.insert_many(documents, ordered=False))
        for stream in range(STREAMS):
            run(store.lifecycle().truncate(f"scavenged-{stream}", keep_from))
        return (store,)

    template = MongoEventStore(connection, events_collection=next(names))
    run(template.migrate())
    indexes = run(template.events.index_information())
    run(database.drop_collection(template.events_collection_name))

    def same_collection() -> tuple[Any]:
        dropped_before()
        name = next(names)
        made.append(name)
        raw = database.get_collection(name, codec_options=CODEC_OPTIONS)
        for index, spec in indexes.items():
            if index != "_id_":
                options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
                run(raw.create_index(spec["key"], name=index, **options))
        run(raw.insert_many(documents, ordered=False))
        return (raw,)

    def raw_replacements(raw: Any) -> None:
        for low in range(0, len(doomed), BATCH):
            requests = [
                ReplaceOne({"_id": d["_id"], "gap": {"$exists": False}}, scavenged(d))
                for d in doomed[low : low + BATCH]
            ]
            run(raw.bulk_write(requests, ordered=False))

    outcome = paired(
        benchmark,
        name="scavenge",
        server=server_label,
        target=lambda store: run(store.lifecycle().scavenge()),
        baseline=raw_replacements,
        prepare=truncated_store,
        prepare_baseline=same_collection,
        rounds=3 if store_size <= CI_SIZE else 1,  # the large run: one pair of ~2 minutes
        warmup_rounds=0,
        settle=0.5,
    )
    assert outcome.removed == len(doomed) and outcome.streams == STREAMS
    info = benchmark.extra_info
    info["store_size"] = store_size
    info["removed"] = len(doomed)
    info["removed_per_second"] = round(len(doomed) / (info["median_ms"] / 1e3))
    info["floor_removed_per_second"] = round(len(doomed) / (info["baseline_median_ms"] / 1e3))
    if store_size <= CI_SIZE:
        assert_ratio(benchmark)
    # The large run records its one pair: a miss would be re-measured with 30 more pairs of
    # several minutes each.
    dropped_before()
