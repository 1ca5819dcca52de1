"""The flat export: a Hive-partitioned Parquet dataset that DuckDB and Polars read as it is,
with sums equal to the frame's; incremental by position; and frames as Polars DataFrames."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow
import pyarrow.dataset
import pytest
from typer.testing import CliRunner

from eventlab import (
    CacheError,
    ConfigurationError,
    ConflictError,
    EventlabError,
    ExpectedVersion,
    MongoConnectionManager,
    MongoEventStore,
    StoredEvent,
)
from eventlab.cli import app
from eventlab.memory import MemoryBackend, MemoryEventStore
from eventlab.workbench import export_flat, read_frame
from eventlab.workbench._jsonl import extended_json

START = datetime(2026, 3, 1, tzinfo=UTC)


def _events(first: int, count: int) -> list[StoredEvent]:
    """Three types over several days, with money, quantities, lists and nested fields."""
    return [
        StoredEvent(
            event_id=uuid.uuid4(),
            event_type=("Placed", "Paid", "Shipped")[position % 3],
            aggregate_id=f"s-{position}",
            aggregate_type="Order",
            version=1,
            payload={
                "unit_price": Decimal(f"{position % 97}.{position % 100:02d}"),
                "quantity": position % 5 + 1,
                "tags": ["a", "b"][: position % 3],
                "address": {"city": f"c{position % 4}"},
                "express": position % 2 == 0,
            },
            metadata={"correlation_id": f"c-{position}"},
            occurred_at=START + timedelta(hours=position),
            recorded_at=START + timedelta(hours=position, seconds=1),
            position=position,
        )
        for position in range(first, first + count)
    ]


def _duckdb(directory: Path, sql: str) -> list[tuple[Any, ...]]:
    source = (
        f"read_parquet('{directory}/**/*.parquet', hive_partitioning = true, union_by_name = true)"
    )
    return duckdb.sql(sql.replace("DATASET", source)).fetchall()


def _revenue_by_type_and_day(frame: pd.DataFrame) -> dict[tuple[str, str], Decimal]:
    revenue = frame["payload.unit_price"] * frame["payload.quantity"]
    day = frame["recorded_at"].dt.strftime("%Y-%m-%d")
    grouped = revenue.groupby([frame["event_type"].astype(str), day]).sum()
    return {key: Decimal(value) for key, value in grouped.items()}


async def test_duckdb_and_polars_read_the_dataset_with_the_frames_sums(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 240))
    dataset = tmp_path / "flat"
    done = await export_flat(store, dataset)
    assert (done.after, done.through, done.written) == (0, 240, 240)
    frame = await read_frame(store)
    expected = _revenue_by_type_and_day(frame)
    rows = _duckdb(
        dataset,
        'SELECT event_type, CAST(day AS VARCHAR), SUM("payload.unit_price" * "payload.quantity")'
        " FROM DATASET GROUP BY ALL",
    )
    assert {(t, d): Decimal(s) for t, d, s in rows} == expected
    assert all(isinstance(s, Decimal) for _, _, s in rows)  # exact, not floats
    (kinds,) = _duckdb(
        dataset,
        'SELECT typeof("payload.unit_price"), typeof(recorded_at), typeof("payload.tags"), '
        "typeof(event_id) FROM DATASET LIMIT 1",
    )
    assert kinds[0].startswith("DECIMAL(18,") and kinds[1] == "TIMESTAMP WITH TIME ZONE"
    assert kinds[2] == "VARCHAR[]" and kinds[3] == "VARCHAR"
    scanned = pl.scan_parquet(f"{dataset}/**/*.parquet", hive_partitioning=True).collect()
    assert scanned.height == 240
    by_polars = scanned.group_by("event_type", pl.col("day").cast(pl.String)).agg(
        (pl.col("payload.unit_price") * pl.col("payload.quantity")).sum().alias("revenue")
    )
    assert {
        (row["event_type"], row["day"]): Decimal(row["revenue"])
        for row in by_polars.iter_rows(named=True)
    } == expected
    assert sorted(scanned["event_id"].to_list()) == sorted(frame["event_id"].to_list())
    parts = sorted(p.relative_to(dataset).parts[:2] for p in dataset.rglob("*.parquet"))
    assert ("event_type=Paid", "day=2026-03-01") in parts


async def test_a_second_export_adds_only_what_came_after(
    connection: MongoConnectionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 100))
    dataset = tmp_path / "flat"
    await export_flat(store, dataset)
    await store.restore(_events(101, 30))
    again = await export_flat(store, dataset)
    assert (again.after, again.through, again.written) == (100, 130, 30)
    assert "30 events of positions 101-130" in capsys.readouterr().out
    nothing = await export_flat(store, dataset)
    assert nothing.written == 0 and nothing.files == 0
    assert "flat export" in (said := capsys.readouterr().out)
    assert "nothing after position 130" in said and "131-130" not in said
    ((count, distinct, top),) = _duckdb(
        dataset, "SELECT count(*), count(DISTINCT event_id), max(position) FROM DATASET"
    )
    assert (count, distinct, top) == (130, 130, 130)
    stray = dataset / "event_type=Paid" / "part-000000000001-000000000999-dead-0.parquet"
    stray.write_bytes((next(dataset.rglob("part-*.parquet"))).read_bytes())
    await export_flat(store, dataset, progress=False)  # a crashed export's file: removed
    assert not stray.exists()


async def test_filters_select_what_is_exported_and_belong_to_the_dataset(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 120))
    dataset = tmp_path / "paid"
    await export_flat(
        store, dataset, event_types=["Paid"], since="2026-03-02", partition_by=["day"]
    )
    frame = await read_frame(store, event_types=["Paid"], since="2026-03-02")
    rows = _duckdb(dataset, "SELECT DISTINCT event_type FROM DATASET")
    assert rows == [("Paid",)]
    ((count,),) = _duckdb(dataset, "SELECT count(*) FROM DATASET")
    assert count == len(frame) and count > 0
    with pytest.raises(ConfigurationError, match="exported with another selection"):
        await export_flat(store, dataset, event_types=["Placed"], partition_by=["day"])
    await connection.client.drop_database(connection.database_name)
    replaced = MongoEventStore(connection)
    await replaced.restore(_events(1, 10))
    with pytest.raises(ConflictError, match="dropped, replaced or restored"):
        await export_flat(
            replaced, dataset, event_types=["Paid"], since="2026-03-02", partition_by=["day"]
        )


@pytest.mark.parametrize("backend", ["mongo", "memory"])
async def test_a_dataset_is_refused_more_events_once_a_scavenge_removed_some(
    connection: MongoConnectionManager, tmp_path: Path, backend: str
) -> None:
    """Files exported before a scavenge hold the events it removed: adding to them would give
    a dataset of both. A scavenge that removes nothing changes nothing."""
    store: Any = (
        MemoryEventStore(MemoryBackend()) if backend == "memory" else MongoEventStore(connection)
    )
    for event in _events(1, 30):
        await store.append(event.aggregate_id, [event], 0)
    dataset = tmp_path / "flat"
    await export_flat(store, dataset, progress=False)
    assert (await store.lifecycle().scavenge()).removed == 0
    for event in _events(31, 5):
        await store.append(event.aggregate_id, [event], 0)
    assert (await export_flat(store, dataset, progress=False)).written == 5
    await store.lifecycle().delete("s-1", ExpectedVersion.ANY, permanent=True)
    assert (await store.lifecycle().scavenge()).removed >= 1
    with pytest.raises(ConflictError, match="a scavenge has removed"):
        await export_flat(store, dataset, progress=False)
    fresh = await export_flat(store, tmp_path / "fresh", progress=False)
    assert fresh.written == len(await read_frame(store, progress=False))


def test_the_cli_exports_a_flat_dataset_with_filters(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    target = ["--uri", mongo_uri, "--database", database_name]
    source = tmp_path / "events.jsonl"
    from eventlab.workbench import dump_jsonl

    dump_jsonl(_events(1, 90), source)
    assert runner.invoke(app, ["import", str(source), *target]).exit_code == 0
    dataset = tmp_path / "flat"
    command = ["export", str(dataset), "--flat", *target]
    result = runner.invoke(app, [*command, "--event-type", "Paid", "--event-type", "Shipped"])
    assert result.exit_code == 0, result.output
    assert "flat export" in result.output and "in " in result.output
    assert sorted(_duckdb(dataset, "SELECT DISTINCT event_type FROM DATASET")) == [
        ("Paid",),
        ("Shipped",),
    ]
    mixed = runner.invoke(app, ["export", str(tmp_path / "x.jsonl"), *target, "--stream", "s-1"])
    assert mixed.exit_code == 2 and "need --flat" in mixed.output


@pytest.mark.parametrize(
    "arguments,error,names",
    [
        ({"partition_by": [{"$gt": ""}]}, ConfigurationError, "partition_by takes"),
        ({"partition_by": "event_type"}, ConfigurationError, "must be column names"),
        ({"partition_by": ["day", "day"]}, ConfigurationError, "twice"),
        ({"streams": {"$ne": ""}}, ConfigurationError, "stream"),
        ({"event_types": [{"$regex": "."}]}, ConfigurationError, "event type"),
        ({"since": 2**70}, ConfigurationError, "datetime"),
        ({"since": "nonsense"}, ConfigurationError, "not a date"),
        ({"time": "$where"}, ConfigurationError, "time must be"),
    ],
)
async def test_hostile_arguments_are_refused_before_anything_is_written(
    connection: MongoConnectionManager,
    tmp_path: Path,
    arguments: dict[str, Any],
    error: type[EventlabError],
    names: str,
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 5))
    with pytest.raises(error, match=names):
        await export_flat(store, tmp_path / "flat", **arguments)
    assert list(tmp_path.iterdir()) == []


async def test_hostile_directories_are_refused(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(_events(1, 5))
    with pytest.raises(ConfigurationError, match="needs a directory path"):
        await export_flat(store, {"$gt": ""})  # type: ignore[arg-type]
    with pytest.raises(CacheError, match="does not exist"):
        await export_flat(store, tmp_path / "no" / "such")
    occupied = tmp_path / "file"
    occupied.write_text("mine")
    with pytest.raises(CacheError, match="not a directory"):
        await export_flat(store, occupied)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(CacheError, match="not a flat export of eventlab"):
        await export_flat(store, foreign)
    assert occupied.read_text() == "mine" and sorted(p.name for p in foreign.iterdir()) == [
        ".eventlab-flat.lock",
        "notes.txt",
    ]


@pytest.mark.parametrize("kind", ["mongo", "memory"])
async def test_a_polars_frame_holds_what_the_pandas_frame_holds(
    connection: MongoConnectionManager, tmp_path: Path, kind: str
) -> None:
    events = _events(1, 60)
    store: Any
    if kind == "memory":
        store = MemoryEventStore(MemoryBackend())
        for event in events:
            await store.append(event.aggregate_id, [event], 0)
    else:
        store = MongoEventStore(connection)
        await store.restore(events)
    for selection in ({}, {"event_types": ["Paid"], "last": 5}, {"streams": ["s-3", "s-9"]}):
        frame = await read_frame(store, **selection)
        polars = await read_frame(store, backend="polars", **selection)
        assert isinstance(polars, pl.DataFrame) and polars.columns == list(frame.columns)
        assert polars["position"].to_list() == frame["position"].tolist()
        assert polars["payload.unit_price"].to_list() == frame["payload.unit_price"].tolist()
        assert polars["payload.tags"].to_list() == frame["payload.tags"].tolist()
    cached = await read_frame(store, backend="polars", cache=tmp_path / "c", progress=False)
    assert cached.height == 60
    revenue = cached.select((pl.col("payload.unit_price") * pl.col("payload.quantity")).sum())
    pandas = await read_frame(store)
    assert (
        Decimal(revenue.item()) == (pandas["payload.unit_price"] * pandas["payload.quantity"]).sum()
    )
    floats = await read_frame(store, backend="polars", numeric=True)
    assert floats["payload.unit_price"].dtype == pl.Float64
    with pytest.raises(ConfigurationError, match="backend must be"):
        await read_frame(store, backend="spark")  # type: ignore[call-overload]


# -- what Spark needs to read the dataset as it is ------------------------------------------------


def _typed_event(position: int, event_type: str, payload: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        aggregate_id=f"t-{position}",
        aggregate_type="Thing",
        version=1,
        payload=payload,
        occurred_at=START,
        recorded_at=START,
        position=position,
    )


async def test_partition_values_are_escaped_as_spark_decodes_them(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    """ASCII specials percent-encoded, other characters as UTF-8 (Spark decodes ``%XX`` one
    character at a time, so a UTF-8 character encoded byte by byte came back garbled); read
    back as docs/frames.md says, partition types given, by DuckDB, Polars and pyarrow."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    names = ["Ünïcode", "a/b=c %d", "404", "dot.ted~_-"]
    store = MongoEventStore(connection)
    await store.restore([_typed_event(i + 1, name, {"n": i}) for i, name in enumerate(names)])
    dataset = tmp_path / "flat"
    await export_flat(store, dataset)
    folders = sorted(p.name for p in dataset.iterdir() if p.is_dir())
    assert folders == [
        "event_type=404",
        "event_type=a%2Fb%3Dc%20%25d",
        "event_type=dot.ted~_-",
        "event_type=Ünïcode",
    ]
    duck = duckdb.sql(
        f"SELECT event_type, day, \"payload.n\" FROM read_parquet('{dataset}/**/*.parquet', "
        "hive_partitioning = true, union_by_name = true, "
        "hive_types = {'event_type': VARCHAR, 'day': DATE}) ORDER BY 3"
    ).fetchall()
    assert [r[0] for r in duck] == names and {r[1] for r in duck} == {START.date()}
    polars = pl.scan_parquet(
        f"{dataset}/**/*.parquet",
        hive_partitioning=True,
        hive_schema={"event_type": pl.String, "day": pl.Date},
    ).collect()
    assert sorted(polars["event_type"].to_list()) == sorted(names)
    arrow = ds.dataset(
        dataset,
        partitioning=ds.partitioning(
            pa.schema([("event_type", pa.string()), ("day", pa.date32())]), flavor="hive"
        ),
    ).to_table()
    assert sorted(arrow["event_type"].to_pylist()) == sorted(names)


def _column_types(dataset: Path, column: str) -> set[str]:
    import pyarrow.parquet as pq

    types = set()
    for part in dataset.rglob("part-*.parquet"):
        schema = pq.read_schema(part)
        if column in schema.names:
            types.add(str(schema.field(column).type))
    return types


@pytest.mark.parametrize(
    ("first", "then", "common", "last"),
    [
        (3, 2.5, "double", 2.5),
        (Decimal("1.25"), Decimal("1.125"), "decimal128(18, 3)", Decimal("1.125")),
        (3, "three", "string", '"three"'),  # values of several kinds: Extended JSON text
        (None, "text", "string", "text"),
    ],
    ids=["int-then-float", "decimal-scale", "int-then-text", "null-then-text"],
)
async def test_a_column_keeps_one_type_across_incremental_exports(
    connection: MongoConnectionManager,
    tmp_path: Path,
    first: Any,
    then: Any,
    common: str,
    last: Any,
) -> None:
    """Spark merges the schemas of a dataset's files only where they agree (but for a
    decimal's precision): a later export needing a wider type rewrites the earlier files in
    it; a column with no value yet (Arrow's null type, which Spark reads as int) is not
    written."""
    store = MongoEventStore(connection)
    await store.restore([_typed_event(i, "T", {"v": first, "n": i}) for i in (1, 2)])
    dataset = tmp_path / "flat"
    await export_flat(store, dataset)
    assert _column_types(dataset, "payload.v") <= (
        {"null"} if first is None else {"int64", "decimal128(18, 2)"}
    )
    if first is None:
        assert _column_types(dataset, "payload.v") == set()
    await store.restore([_typed_event(3, "T", {"v": then, "n": 3})])
    await export_flat(store, dataset)
    assert _column_types(dataset, "payload.v") == {common}
    values = _duckdb(dataset, 'SELECT "payload.v" FROM DATASET ORDER BY position')
    assert values[-1][0] == last
    assert len(values) == 3


async def test_nan_decimals_empty_documents_and_lists_of_uuids_are_exported(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    """What a frame holds as Python objects reaches the dataset: a decimal NaN (refused as
    "rounded" before), an empty document (a struct Parquet cannot store: Extended JSON text)
    and a list of UUIDs (as lists of their text, as UUIDs are everywhere else)."""
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    store = MongoEventStore(connection)
    await store.restore(
        [
            _typed_event(1, "T", {"value": Decimal("NaN"), "options": {}, "ids": ids}),
            _typed_event(2, "T", {"value": Decimal("1.5"), "options": {}, "ids": ids[:1]}),
        ]
    )
    frame = await read_frame(store, cache=tmp_path / "cache", progress=False)
    assert frame["payload.value"].iloc[0].is_nan()
    dataset = tmp_path / "flat"
    await export_flat(store, dataset, progress=False)
    rows = _duckdb(
        dataset, 'SELECT "payload.ids", "payload.options" FROM DATASET ORDER BY position'
    )
    assert rows[0][0] == [str(i) for i in ids] and rows[1][0] == [str(ids[0])]
    assert rows[0][1] == "{}"
    archived = await store.archive(tmp_path / "archive", through=2)
    assert archived.archived >= 0


# -- incremental exports give what one export of the same events gives ----------------------------


def _dataset_of(dataset: Path, column: str) -> tuple[set[str], list[Any]]:
    values = _duckdb(dataset, f'SELECT "{column}" FROM DATASET ORDER BY position')
    return _column_types(dataset, column), [v for (v,) in values]


@pytest.mark.parametrize(
    "values",
    [
        (0, "0", 7),
        (1.5, "2", 2.5),
        (Decimal("1.50"), "2.5", Decimal("3.25")),
        (True, "true", False),
        (0, True, 2),
        (START, START.isoformat(), START),
        ("abc", 0, "0"),
        (3, 2.0, 4),
        ([1, 2], "x", [3]),
        (3, Decimal("1.50"), 4),
        (Decimal("1.50"), 3, Decimal("2.125")),
    ],
    ids=[
        "int-text",
        "float-text",
        "decimal-text",
        "bool-text",
        "int-bool",
        "date-text",
        "text-int",
        "int-integral-float",
        "list-text",
        "int-decimal",
        "decimal-int",
    ],
)
async def test_incremental_exports_give_what_one_export_gives(
    connection: MongoConnectionManager, tmp_path: Path, values: tuple[Any, ...]
) -> None:
    """A value of another kind is never cast into the earlier files' type: the column becomes
    what one export of the same events makes it (Extended JSON text for values of several
    kinds), the earlier files rewritten."""
    store = MongoEventStore(connection)
    incremental = tmp_path / "incremental"
    for position, value in enumerate(values, start=1):
        await store.restore([_typed_event(position, "T", {"v": value, "n": position})])
        await export_flat(store, incremental, progress=False)
    once = tmp_path / "once"
    await export_flat(store, once, progress=False)
    assert _dataset_of(incremental, "payload.v") == _dataset_of(once, "payload.v")
    assert _dataset_of(incremental, "payload.n") == _dataset_of(once, "payload.n")
    types, _ = _dataset_of(once, "payload.v")
    assert len(types) == 1


async def test_decimal_infinities_are_extended_json_text_as_nan_is(
    connection: MongoConnectionManager, tmp_path: Path
) -> None:
    store = MongoEventStore(connection)
    await store.restore(
        [
            _typed_event(1, "T", {"value": Decimal("Infinity")}),
            _typed_event(2, "T", {"value": Decimal("1.5")}),
            _typed_event(3, "T", {"value": Decimal("-Infinity")}),
        ]
    )
    expected = [
        '{"$numberDecimal": "Infinity"}',
        '{"$numberDecimal": "1.5"}',
        '{"$numberDecimal": "-Infinity"}',
    ]
    polars = await read_frame(store, backend="polars", progress=False)
    assert polars["payload.value"].dtype == pl.String
    assert polars["payload.value"].to_list() == expected
    dataset = tmp_path / "flat"
    await export_flat(store, dataset, progress=False)
    assert _dataset_of(dataset, "payload.value") == ({"string"}, expected)


async def test_an_export_killed_before_its_manifest_is_recovered_by_the_next(
    connection: MongoConnectionManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after moving its files in, before writing the manifest naming them: the next
    export removes them and exports again; a directory of foreign files is still refused."""
    from eventlab.workbench import _flat

    class Killed(BaseException):
        pass

    real = _flat._write_manifest

    def killed_once_files_are_in(target: Path, manifest: dict[str, Any]) -> None:
        if any(target.rglob("part-*.parquet")):
            raise Killed
        real(target, manifest)

    store = MongoEventStore(connection)
    await store.restore(_events(1, 30))
    dataset = tmp_path / "flat"
    monkeypatch.setattr(_flat, "_write_manifest", killed_once_files_are_in)
    with pytest.raises(Killed):
        await export_flat(store, dataset, progress=False)
    monkeypatch.setattr(_flat, "_write_manifest", real)
    assert any(dataset.rglob("part-*.parquet"))
    done = await export_flat(store, dataset, progress=False)
    assert (done.after, done.through, done.written) == (0, 30, 30)
    ((count, distinct),) = _duckdb(
        dataset, "SELECT count(*), count(DISTINCT event_id) FROM DATASET"
    )
    assert (count, distinct) == (30, 30)
    foreign = tmp_path / "foreign"
    (foreign / "event_type=X").mkdir(parents=True)
    (foreign / "event_type=X" / "part-0.parquet").write_bytes(b"theirs")
    with pytest.raises(CacheError, match="not a flat export"):
        await export_flat(store, foreign, progress=False)
    assert (foreign / "event_type=X" / "part-0.parquet").read_bytes() == b"theirs"


async def test_an_export_killed_after_rewriting_earlier_files_is_finished_by_the_next(
    connection: MongoConnectionManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed once it has rewritten the earlier files as Extended JSON text, before its
    manifest says so: the next export does not encode them twice."""
    from eventlab.workbench import _flat

    class Killed(BaseException):
        pass

    def killed(target: Path, manifest: dict[str, Any]) -> None:
        raise Killed

    store = MongoEventStore(connection)
    await store.restore([_typed_event(1, "T", {"v": 0})])
    dataset = tmp_path / "flat"
    await export_flat(store, dataset, progress=False)
    await store.restore([_typed_event(2, "T", {"v": "0"})])
    real = _flat._write_manifest
    monkeypatch.setattr(_flat, "_write_manifest", killed)
    with pytest.raises(Killed):
        await export_flat(store, dataset, progress=False)
    monkeypatch.setattr(_flat, "_write_manifest", real)
    assert _column_types(dataset, "payload.v") == {"string"}  # the earlier file, rewritten
    await export_flat(store, dataset, progress=False)
    once = tmp_path / "once"
    await export_flat(store, once, progress=False)
    assert _dataset_of(dataset, "payload.v") == _dataset_of(once, "payload.v")
    assert _dataset_of(once, "payload.v") == ({"string"}, ["0", '"0"'])


TIME = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "values",
    [
        [TIME, 3],
        [TIME, 1_700_000_000_000],
        [TIME, Decimal("NaN")],
        [TIME, 2**62],
        [1.5, True],
        [[1, "a"], [2]],
        [["a"], [b"b"]],
        [2**60, 2.5],
    ],
    ids=[
        "time-int",
        "time-epoch",
        "time-nan",
        "time-big",
        "float-bool",
        "list-mixed",
        "text-bytes",
        "big-int-float",
    ],
)
async def test_values_of_several_kinds_are_exported_as_they_are(
    tmp_path: Path, values: list[Any]
) -> None:
    """Arrow types a column by its first value and converts the others to it (a time then
    the int 3 gives a time in 1970): values of several kinds are Extended JSON text, each as
    it is, in one export as in several."""
    store = MemoryEventStore(MemoryBackend())
    for i, value in enumerate(values, start=1):
        event = replace(_events(i, 1)[0], payload={"v": value}, position=None)
        await store.append(event.aggregate_id, [event], 0)
    await export_flat(store, tmp_path / "flat", progress=False)
    table = pyarrow.dataset.dataset(
        tmp_path / "flat", format="parquet", partitioning="hive"
    ).to_table()
    assert table.schema.field("payload.v").type == pyarrow.string()
    rows = sorted(zip(table["position"].to_pylist(), table["payload.v"].to_pylist(), strict=True))
    assert [text for _, text in rows] == [extended_json(v) for v in values]


async def test_the_staging_folder_of_a_killed_export_is_removed_by_the_next(
    tmp_path: Path,
) -> None:
    """SIGKILLed while writing its files beside the dataset, an export leaves its staging
    folder (``.<name>.<12 hex>.staging``): the next export of the dataset removes it, and
    nothing else beside it."""
    store = MemoryEventStore(MemoryBackend())
    for event in _events(1, 5):
        await store.append(event.aggregate_id, [event], 0)
    killed = tmp_path / ".flat.0123456789ab.staging" / "event_type=Paid"
    killed.mkdir(parents=True)
    (killed / "part-000000000001-000000000005-0.parquet").write_bytes(b"half")
    others = [tmp_path / ".flat.mine.staging", tmp_path / ".other.0123456789ab.staging"]
    for other in others:
        other.mkdir()
    assert (await export_flat(store, tmp_path / "flat", progress=False)).written == 5
    assert not killed.parent.exists()
    assert all(other.is_dir() for other in others)
