"""Suite: the archive against the floor of the same job, and a stream read through it.

* ``archive-vs-floor``: ``store.archive`` of a 3,000-event log (300 streams, events spread
  over them at random: about 2,400 move, each stream's first and last events stay) against
  the floor of the same job on the same server: the driver's read of the same documents, the
  same Parquet bytes written to the same kind of file, and one unordered bulk of point deletes
  of the same positions (an ``$in`` of thousands of values costs the embedded server per value
  per document). One paired round (a round
  is two filled stores); the numbers are recorded in docs/archive.md, not decided.
* ``stream-through-archive``: reading one stream of about 10 events whose events but the
  first and the last are archived (an archive of about 800 events, loaded in the process)
  against the same stream read live.

``EVENTLAB_ARCHIVE_EVENTS`` sets the log's size: 3,000 keeps the file within 30 s on the
embedded server; docs/archive.md records the runs with 10000 and 100000.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import DeleteOne

from eventlab import MongoConnectionManager, MongoEventStore
from eventlab._archive._segments import encode
from eventlab._core.bson_values import CODEC_OPTIONS

from ._paired import paired
from .conftest import stored_documents

Run = Callable[[Awaitable[Any]], Any]
EVENTS = int(os.environ.get("EVENTLAB_ARCHIVE_EVENTS", "3000"))
READ_EVENTS = 1_000
STREAMS = EVENTS // 10


def log_documents(registry: Any) -> list[dict[str, Any]]:
    """``EVENTS`` stored documents in ``STREAMS`` streams, streams interleaved at random."""
    shuffle = random.Random(7)
    owners = [n % STREAMS for n in range(EVENTS)]
    shuffle.shuffle(owners)
    template = stored_documents(registry, EVENTS)
    versions: dict[int, int] = {}
    documents = []
    for position, (owner, doc) in enumerate(zip(owners, template, strict=True), start=1):
        versions[owner] = versions.get(owner, 0) + 1
        documents.append(
            {
                **doc,
                "_id": uuid.uuid4(),
                "aggregate_id": f"stream-{owner:06d}",
                "version": versions[owner],
                "position": position,
            }
        )
    return documents


def _movable_positions(documents: list[dict[str, Any]]) -> set[int]:
    """The positions an archive of the whole log moves: all but each stream's first and last."""
    last: dict[str, int] = {}
    for doc in documents:
        last[doc["aggregate_id"]] = doc["version"]
    return {
        d["position"]
        for d in documents
        if d["version"] != 1 and d["version"] != last[d["aggregate_id"]]
    }


@pytest.fixture(scope="module")
def documents(registry: Any) -> list[dict[str, Any]]:
    return log_documents(registry)


def test_archive_vs_floor(
    benchmark: Any,
    connection: MongoConnectionManager,
    run: Run,
    server_label: str,
    documents: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    movable = _movable_positions(documents)
    names = (f"bench_archive_{n}" for n in itertools.count())
    made: list[str] = []
    folders = (tmp_path_factory.mktemp("archive") for _ in itertools.count())

    def filled_store() -> tuple[MongoEventStore, Path]:
        while made:  # the previous round's collections go (untimed)
            run(connection.database.drop_collection(made.pop()))
        name = next(names)
        made.extend([name, f"{name}_counters"])
        store = MongoEventStore(connection, events_collection=name, counters_collection=made[-1])
        run(store.restore(_events(documents), chunk_size=5_000, progress=False))
        return store, next(folders) / "archive"

    def floor(store: MongoEventStore, folder: Path) -> None:
        raw = store.events.with_options(codec_options=CODEC_OPTIONS)
        found = run(raw.find({"position": {"$lte": EVENTS}}).to_list(None))
        moving = [d for d in found if d["position"] in movable]
        folder.mkdir()
        (folder / "part.parquet").write_bytes(encode(moving))
        deletes = [DeleteOne({"position": d["position"]}) for d in moving]
        run(raw.bulk_write(deletes, ordered=False))

    outcome = paired(
        benchmark,
        name="archive-vs-floor",
        server=server_label,
        target=lambda store, folder: run(store.archive(folder, through=EVENTS)),
        baseline=floor,
        prepare=filled_store,
        prepare_baseline=filled_store,
        rounds=1,
        warmup_rounds=0,
    )
    assert outcome.archived == len(movable) and outcome.kept_live == EVENTS - len(movable)
    info = benchmark.extra_info
    info["events"] = EVENTS
    info["events_per_second"] = round(outcome.archived / (info["median_ms"] / 1e3))
    while made:
        run(connection.database.drop_collection(made.pop()))


def test_stream_through_archive_vs_live(
    benchmark: Any,
    connection: MongoConnectionManager,
    run: Run,
    server_label: str,
    registry: Any,
    tmp_path: Path,
) -> None:
    archived = MongoEventStore(connection, events_collection="bench_archive_read")
    live = MongoEventStore(connection, events_collection="bench_archive_live")
    documents = [d for d in log_documents(registry) if d["position"] <= READ_EVENTS]
    for store in (archived, live):
        run(store.restore(_events(documents), chunk_size=5_000, progress=False))
    run(archived.archive(tmp_path / "archive", through=len(documents)))
    stream = documents[-1]["aggregate_id"]  # its last event is the log's last
    expected = sum(1 for d in documents if d["aggregate_id"] == stream)
    run(archived.read_stream(stream))  # the archive loaded once, as a running service has it

    paired(
        benchmark,
        name="stream-through-archive",
        server=server_label,
        target=lambda: run(archived.read_stream(stream)),
        baseline=lambda: run(live.read_stream(stream)),
        rounds=40,
        warmup_rounds=3,
    )
    assert len(run(archived.read_stream(stream))) == expected
    for store in (archived, live):
        run(connection.database.drop_collection(store.events_collection_name))
        run(connection.database.drop_collection(store.counters_collection_name))


def _events(documents: list[dict[str, Any]]) -> list[Any]:
    from eventlab._core.event_codec import from_document

    return [from_document(d) for d in documents]
