"""Frames of a store: filters pushed to the server, the local Parquet cache, files."""

from __future__ import annotations

import asyncio
import uuid
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from eventlab import (
    CacheError,
    ConfigurationError,
    EventlabError,
    MongoConnectionManager,
    MongoEventStore,
    MongoUnitOfWork,
    StoredEvent,
)
from eventlab.cli import app
from eventlab.memory import MemoryBackend, MemoryEventStore
from eventlab.workbench import events_frame, read_frame
from eventlab.workbench._frame_query import FrameQuery

START = datetime(2026, 3, 1, tzinfo=UTC)


def _events(count: int, first_position: int = 1) -> list[StoredEvent]:
    """Events of five streams, three types, two aggregate types, one per hour, with the
    column kinds a frame has (text, ints, exact decimals, bools, times, lists, nested)."""
    events = []
    for i in range(count):
        position = first_position + i
        stream = f"s-{position % 5}"
        events.append(
            StoredEvent(
                event_id=uuid.uuid4(),
                event_type=("Placed", "Paid", "Shipped")[position % 3],
                aggregate_id=stream,
                aggregate_type="Order" if position % 5 < 3 else "Cart",
                version=(position - 1) // 5 + 1,  # each stream's versions 1, 2, 3, ...
                payload={
                    "n": position,
                    "total": Decimal(f"{position}.25"),
                    "label": f"l{position % 4}",
                    "express": position % 2 == 0,
                    "due": START + timedelta(days=position),
                    "tags": ["a", "b"][: position % 3],
                    "address": {"city": f"c{position % 3}", "zip": position % 7},
                },
                metadata={"correlation_id": f"c-{position}"},
                occurred_at=START + timedelta(hours=position),
                recorded_at=START + timedelta(hours=position, seconds=1),
                position=position,
            )
        )
    return events


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert list(left.columns) == list(right.columns)
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), check_categorical=False
    )


@pytest.fixture(params=["mongo", "mongo-query-indexes", "memory"])
async def filled(request: pytest.FixtureRequest, connection: MongoConnectionManager) -> Any:
    events = _events(240)
    if request.param == "memory":  # appended one by one: the same positions, recorded now
        store: Any = MemoryEventStore(MemoryBackend())
        for event in events:
            await store.append(event.aggregate_id, [event], event.version - 1)
        return store
    store = MongoEventStore(connection, query_indexes=request.param == "mongo-query-indexes")
    await store.restore(events)
    return store


FILTERS: list[dict[str, Any]] = [
    {"streams": "s-1"},
    {"streams": ["s-1", "s-3"], "event_types": ["Paid"]},
    {"event_types": ["Shipped"]},
    {"aggregate_types": ["Cart"]},
    {"since": START + timedelta(hours=50), "until": START + timedelta(hours=80)},
    {"since": START + timedelta(hours=50), "time": "occurred_at"},
    {"until": "2026-03-02T00:00:00+00:00", "event_types": ["Placed", "Paid"]},
    {"after": 100, "through": 150},
    {"last": 7},
    {"last": 5, "event_types": ["Paid"]},
    {"last": 3, "streams": "s-4"},
    {"after": 230, "last": 50},
]


@pytest.mark.parametrize("selection", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
async def test_filters_return_what_pandas_selects_from_the_whole_frame(
    filled: Any, selection: dict[str, Any]
) -> None:
    timed = "since" in selection or "until" in selection
    if isinstance(filled, MemoryEventStore) and timed and selection.get("time") != "occurred_at":
        pytest.skip("the in-memory store records its own times")
    whole = await read_frame(filled)
    assert len(whole) == 240 and whole["position"].is_monotonic_increasing
    expected = FrameQuery.of(**selection).apply(whole)
    assert len(expected) > 0, "each filter selects something"
    _same(await read_frame(filled, **selection), expected)


async def test_the_cache_reads_only_what_came_after_it(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(300))
    cache = tmp_path / "cache"
    first = await read_frame(store, cache=cache)
    _same(first, await read_frame(store))
    assert "read 300 new from the store" in capsys.readouterr().out
    await store.restore(_events(45, first_position=301))
    again = await read_frame(store, cache=cache)
    said = capsys.readouterr().out
    assert "300 events through position 300" in said and "read 45 new" in said
    _same(again, await read_frame(store))
    assert again["position"].tolist() == list(range(1, 346))
    unchanged = await read_frame(store, cache=cache, event_types=["Paid"], last=4)
    _same(unchanged, await read_frame(store, event_types=["Paid"], last=4))
    assert "read 0 new" in capsys.readouterr().out
    # Every column kind comes back exactly from the Parquet parts.
    assert again["payload.total"].iloc[0] == Decimal("1.25")
    assert again["payload.tags"].iloc[1] == ["a", "b"] and again["payload.tags"].iloc[2] == []


async def test_a_late_commit_below_the_head_is_not_missed_with_preallocated_positions(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection, positions="preallocated")
    await store.restore(_events(9))
    cache = tmp_path / "cache"
    await read_frame(store, cache=cache)
    async with MongoUnitOfWork(connection) as uow:
        (held,) = await store.append("late", [_noted("late")], 0, uow=uow)  # in flight
        (above,) = await store.append("early", [_noted("early")], 0)  # committed after it
        framing = asyncio.create_task(read_frame(store, cache=cache, progress=False))
        for _ in range(20):  # let the reader reach the held position (or not: both must hold)
            await asyncio.sleep(0)
        await uow.commit()
    frame = await framing
    assert frame["position"].tolist() == [*range(1, 10), held.position, above.position]
    again = await read_frame(store, cache=cache, progress=False)
    _same(again, frame)
    _same(again, await read_frame(store))


def _noted(stream: str) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Noted",
        aggregate_id=stream,
        aggregate_type="Note",
        version=1,
        payload={"n": 1},
        occurred_at=START,
    )


async def test_a_store_replaced_under_the_cache_is_read_again(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MongoEventStore(connection, events_collection="replaced")
    await store.restore(_events(60))
    cache = tmp_path / "cache"
    await read_frame(store, cache=cache)
    await store.events.drop()
    await connection.database["counters"].delete_many({})
    other = MongoEventStore(connection, events_collection="replaced")
    await other.restore(_events(80))  # same name, other events
    capsys.readouterr()
    frame = await read_frame(other, cache=cache)
    said = capsys.readouterr().out
    assert "the store was dropped, replaced or restored since it was made" in said
    assert "rebuilt whole; read 80 new from the store" in said
    _same(frame, await read_frame(other))
    assert set(frame["event_id"]) == set((await read_frame(other))["event_id"])


async def test_frames_go_to_parquet_and_back(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(30))
    frame = await read_frame(store)
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    back = pd.read_parquet(path)
    exact = [c for c in frame.columns if frame[c].dtype != object and c != "payload.total"]
    _same(back[exact], frame[exact])
    assert back["payload.total"].tolist() == frame["payload.total"].tolist()
    assert [list(v) for v in back["payload.tags"]] == list(frame["payload.tags"])
    kinds = {c: str(frame[c].dtype) for c in frame.columns}
    assert kinds["position"] == "Int64" and kinds["event_type"] == "category"
    assert kinds["payload.express"] == "boolean" and "decimal" in kinds["payload.total"]
    assert kinds["recorded_at"].startswith("datetime64") and "UTC" in kinds["recorded_at"]


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"streams": {"$gt": ""}}, "stream"),
    ({"streams": [{"$ne": 1}]}, "stream"),
    ({"event_types": [{"$regex": "."}]}, "event type"),
    ({"aggregate_types": {"$gt": ""}}, "aggregate type"),
    ({"since": datetime(2026, 1, 1)}, "timezone-aware"),
    ({"until": "not a date"}, "not a date"),
    ({"until": ""}, "not a date"),
    ({"since": 12}, "datetime"),
    ({"time": "$where"}, "time must be"),
    ({"after": -1}, "after"),
    ({"after": "5"}, "after"),
    ({"through": 2**70}, "64-bit"),
    ({"last": 0}, "last"),
    ({"last": -3}, "last"),
    ({"last": True}, "last"),
    ({"streams": [f"s{i}" for i in range(10_001)]}, "at most"),
    ({"since": START + timedelta(days=2), "until": START}, "must be after"),
    ({"cache": 42}, "directory"),
]


@pytest.mark.parametrize("arguments,names", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
async def test_hostile_selections_are_refused_before_anything_is_read_or_written(
    connection: MongoConnectionManager,
    tmp_path: Path,
    arguments: dict[str, Any],
    names: str,
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(5))
    with pytest.raises(EventlabError, match=names):
        await read_frame(store, **arguments)
    assert list(tmp_path.iterdir()) == []
    assert await store.count() == 5


async def test_iso_text_without_an_offset_means_utc(connection: MongoConnectionManager) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(100))
    plain = await read_frame(store, since="2026-03-02", until="2026-03-03T06:00")
    utc = await read_frame(
        store,
        since=datetime(2026, 3, 2, tzinfo=UTC),
        until=datetime(2026, 3, 3, 6, tzinfo=UTC),
    )
    assert len(utc) == 30
    _same(plain, utc)
    shifted = await read_frame(store, since="2026-03-02T00:00+02:00", until="2026-03-03T06:00")
    assert len(shifted) == 32  # an offset given is kept


async def test_a_cache_path_that_is_a_file_is_refused(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(5))
    occupied = tmp_path / "file"
    occupied.write_text("mine")
    with pytest.raises(CacheError, match="not a directory"):
        await read_frame(store, cache=occupied)
    assert occupied.read_text() == "mine"


def test_events_frame_and_read_frame_build_the_same_frame() -> None:
    events = _events(12)
    frame = events_frame(events)
    assert frame["position"].tolist() == list(range(1, 13))
    assert frame["payload.address.city"].tolist()[:3] == ["c1", "c2", "c0"]
    assert frame["payload.due"].iloc[0] == START + timedelta(days=1)
    assert events_frame(reversed(events))["position"].tolist() == list(range(1, 13))


@pytest.mark.parametrize("argument", ["streams", "event_types", "aggregate_types"])
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
async def test_an_empty_selection_is_refused_on_both_paths(
    connection: MongoConnectionManager, tmp_path: Path, argument: str, cached: bool
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(5))
    cache = {"cache": tmp_path / "cache"} if cached else {}
    for empty in ([], (), iter([])):
        with pytest.raises(ConfigurationError, match=f"^{argument} is empty: pass None for"):
            await read_frame(store, **{argument: empty}, **cache, progress=False)
    assert list(tmp_path.iterdir()) == []


async def test_a_frame_that_selects_nothing_has_the_same_columns_cached_and_not(
    filled: Any, tmp_path: Path
) -> None:
    for selection in ({"event_types": ["Nothing"]}, {"streams": "nobody"}, {"after": 10_000}):
        cached = await read_frame(filled, cache=tmp_path / "cache", progress=False, **selection)
        assert len(cached) == 0
        _same(cached, await read_frame(filled, **selection))
        polars_cached = await read_frame(
            filled, cache=tmp_path / "cache", progress=False, backend="polars", **selection
        )
        polars = await read_frame(filled, backend="polars", **selection)
        assert polars_cached.is_empty() and polars_cached.schema == polars.schema


def _stamped(milliseconds: list[int]) -> list[StoredEvent]:
    """One event per time, ``START`` plus that many milliseconds."""
    return [
        replace(event, recorded_at=START + timedelta(milliseconds=ms), occurred_at=START)
        for event, ms in zip(_events(len(milliseconds)), milliseconds, strict=True)
    ]


FINE_BOUNDS: list[tuple[dict[str, Any], list[int]]] = [
    ({"since": "2026-03-01T00:00:00.123456789"}, [124, 125]),
    ({"since": "2026-03-01T00:00:00.123000001"}, [124, 125]),
    ({"since": "2026-03-01T00:00:00.123000000"}, [123, 124, 125]),
    ({"until": "2026-03-01T00:00:00.124000001"}, [122, 123, 124]),
    ({"since": pd.Timestamp("2026-03-01T00:00:00.122999999Z")}, [123, 124, 125]),
    ({"since": START + timedelta(microseconds=123_456)}, [124, 125]),
    ({"until": START + timedelta(microseconds=123_001)}, [122, 123]),
    ({"since": "2026-03-01T00:00:00.1231", "until": "2026-03-01T00:00:00.1239"}, []),
]


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize(
    "bounds,selected", FINE_BOUNDS, ids=[str(i) for i in range(len(FINE_BOUNDS))]
)
async def test_bounds_finer_than_a_millisecond_select_exactly_and_warn_nothing(
    connection: MongoConnectionManager,
    tmp_path: Path,
    bounds: dict[str, Any],
    selected: list[int],
    cached: bool,
) -> None:
    """Stored times are whole milliseconds: ``since <= t < until`` holds exactly, with no
    pandas warning about discarded nanoseconds."""
    store = MongoEventStore(connection)
    await store.restore(_stamped([122, 123, 124, 125]))
    cache = {"cache": tmp_path / "cache"} if cached else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = await read_frame(store, **bounds, **cache, progress=False)
    times = [START + timedelta(milliseconds=ms) for ms in selected]
    assert list(frame["recorded_at"]) == times


def test_a_flat_export_from_a_time_finer_than_a_millisecond_warns_nothing(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    async def seed() -> None:
        async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
            await MongoEventStore(conn).restore(_stamped([122, 123, 124, 125]))

    asyncio.run(seed())
    target = tmp_path / "flat"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = CliRunner().invoke(
            app,
            [
                "export", str(target), "--flat", "--since", "2026-03-01T00:00:00.123456789",
                "--uri", mongo_uri, "--database", database_name,
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output and "nanoseconds" not in result.output
    exported = pd.read_parquet(target)
    assert sorted(exported["recorded_at"]) == [
        START + timedelta(milliseconds=ms) for ms in (124, 125)
    ]
