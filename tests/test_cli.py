from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from eventlab.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_tour_runs_end_to_end(mongo_uri: str, database_name: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = runner.invoke(
        app, ["tour", "--uri", mongo_uri, "--database", database_name, "--reports", str(reports)]
    )
    assert result.exit_code == 0, result.output
    assert "8,041 events restored" in result.output
    assert "1 writer stored its event, 15 got ConcurrencyError" in result.output
    assert "Rebuilding one order" in result.output and "status: new → placed" in result.output
    assert "missing_positions              4" in result.output
    assert "order_totals    800 rows" in result.output and "open tasks: " in result.output
    assert (reports / "gaps.png").stat().st_size > 10_000
    assert (reports / "timeline.png").stat().st_size > 10_000


def test_migrate_command(mongo_uri: str, database_name: str) -> None:
    first = runner.invoke(app, ["migrate", "--uri", mongo_uri, "--database", database_name])
    assert first.exit_code == 0, first.output
    assert "applied  domain_events:0001_event_store_core" in first.output
    again = runner.invoke(app, ["migrate", "--uri", mongo_uri, "--database", database_name])
    assert "present  domain_events:0001_event_store_core" in again.output


def test_unreachable_uri_is_one_clean_line() -> None:
    result = runner.invoke(
        app, ["migrate", "--uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"]
    )
    assert result.exit_code == 1
    assert "error: cannot reach MongoDB at mongodb://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output


def test_invalid_database_name() -> None:
    # A usage error (exit code 2), named by its option, before any connection is tried.
    for option in (["-d", "a/b"], ["-d", '{"$gt": ""}'], ["-d", ""]):
        result = runner.invoke(app, ["migrate", "--uri", "mongodb://127.0.0.1:1", *option])
        assert result.exit_code == 2 and "'--database' / '-d'" in result.output, result.output
        assert "database name" in result.output
    result = runner.invoke(app, ["stats", "--events-collection", "a$b"])
    assert result.exit_code == 2 and "'--events-collection'" in result.output, result.output


DATA = Path(__file__).resolve().parent.parent / "data"


def test_import_export_stats_gaps_replay(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    target = ["--uri", mongo_uri, "--database", database_name]
    imported = runner.invoke(
        app, ["import", str(DATA / "orders.jsonl"), *target, "--preserve-positions"]
    )
    assert imported.exit_code == 0, imported.output
    assert "restored 3,358 events" in imported.output and "positions kept" in imported.output
    stats = runner.invoke(app, ["stats", *target])
    assert "3,358 events in 800 streams" in stats.output and "0 missing" in stats.output
    exported = tmp_path / "backup.jsonl"
    result = runner.invoke(app, ["export", str(exported), *target])
    assert result.exit_code == 0 and "exported 3,358 events" in result.output
    assert exported.read_text() == (DATA / "orders.jsonl").read_text()  # a restore is exact
    plot = tmp_path / "gaps.png"
    gaps = runner.invoke(app, ["gaps", *target, "--plot", str(plot)])
    assert "position_gaps                     0" in gaps.output and plot.exists()
    replayed = runner.invoke(app, ["replay", "order-00001", *target])
    assert (
        replayed.exit_code == 0
        and "OrderPlaced" in replayed.output
        and "status: new → placed" in replayed.output
    )
    missing = runner.invoke(app, ["replay", "order-99999", *target])
    assert missing.exit_code == 1 and "no events stored" in missing.output


def test_parquet_export_and_import_are_exact_and_chunked(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    source = ["--uri", mongo_uri, "--database", database_name]
    copy = ["--uri", mongo_uri, "--database", f"{database_name}_copy"]
    runner.invoke(app, ["import", str(DATA / "orders.jsonl"), *source, "--preserve-positions"])
    backup = tmp_path / "backup.parquet"
    exported = runner.invoke(app, ["export", str(backup), *source])
    assert exported.exit_code == 0 and "exported 3,358 events" in exported.output
    assert "(parquet)" in exported.output and not list(tmp_path.glob("*.partial"))
    parquet = pq.ParquetFile(backup)
    assert parquet.metadata.num_rows == 3358 and parquet.num_row_groups == 2  # 2,000 a chunk
    restored = runner.invoke(app, ["import", str(backup), *copy, "--preserve-positions"])
    assert restored.exit_code == 0 and "restored 3,358 events" in restored.output
    again = tmp_path / "again.jsonl"
    runner.invoke(app, ["export", str(again), *copy])
    assert again.read_text() == (DATA / "orders.jsonl").read_text()  # exact, through Parquet
    wrong = runner.invoke(app, ["export", str(tmp_path / "x.csv"), *source, "--format", "csv"])
    assert wrong.exit_code == 1 and "format must be 'jsonl' or 'parquet'" in wrong.output
    not_events = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1]}), not_events)
    refused = runner.invoke(app, ["import", str(not_events), *copy])
    assert refused.exit_code == 1 and "not an eventlab Parquet export" in refused.output


def test_import_appends_with_new_positions(mongo_uri: str, database_name: str) -> None:
    target = ["--uri", mongo_uri, "--database", database_name]
    result = runner.invoke(app, ["import", str(DATA / "anomalies.jsonl"), *target])
    assert result.exit_code == 1 and "refusing to import" in result.output
    nothing = runner.invoke(app, ["stats", *target])
    assert nothing.exit_code == 1 and "no database" in nothing.output  # nothing partial
    chat = runner.invoke(app, ["import", str(DATA / "chat.jsonl"), *target])
    assert chat.exit_code == 0, chat.output
    stats = runner.invoke(app, ["stats", *target])
    assert (
        "4,683 events in 400 streams" in stats.output
        and "positions 1..4683: 0 missing" in stats.output
    )


def test_gaps_on_a_file() -> None:
    result = runner.invoke(app, ["gaps", "--file", str(DATA / "anomalies.jsonl")])
    assert result.exit_code == 0
    assert "missing_positions                 4" in result.output
    assert "order-00001" in result.output and "order-00002" in result.output


def test_bad_files_are_one_clean_line(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["import", str(tmp_path / "nope.jsonl"), "--uri", "mongodb://127.0.0.1:1"]
    )
    assert (
        missing.exit_code == 1
        and "cannot open" in missing.output
        and "Traceback" not in missing.output
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text((DATA / "orders.jsonl").read_text().splitlines()[0] + "\n{oops\n")
    malformed = runner.invoke(app, ["import", str(bad), "--uri", "mongodb://127.0.0.1:1"])
    assert malformed.exit_code == 1 and f"{bad}:2:" in malformed.output


def test_projections_and_rebuild_commands(mongo_uri: str, database_name: str) -> None:
    data = Path(__file__).parent.parent / "data" / "orders.jsonl"
    base = ["--uri", mongo_uri, "--database", database_name]
    imported = runner.invoke(app, ["import", str(data), *base])
    assert imported.exit_code == 0, imported.output
    before = runner.invoke(app, ["projections", *base])
    assert before.exit_code == 0, before.output
    # A status command writes nothing: no read model exists yet, so none is listed or made.
    assert "no read models of the sample projections" in before.output, before.output
    from pymongo import MongoClient

    with MongoClient(mongo_uri) as client:
        assert client[database_name]["projections"].count_documents({}) == 0
    rebuilt = runner.invoke(app, ["rebuild", "order_totals", *base])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt order_totals: generation 2, 800 rows at position 3,358" in rebuilt.output
    after = runner.invoke(app, ["projections", *base])
    line = next(ln for ln in after.output.splitlines() if ln.startswith("order_totals"))
    assert line.split()[1:5] == ["1", "2", "3,358", "0"]
    unknown = runner.invoke(app, ["rebuild", "nope", *base])
    assert unknown.exit_code == 1 and "known: open_tasks, order_totals" in unknown.output
