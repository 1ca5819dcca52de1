"""Imports are whole or resumed: a refusal found before writing writes nothing; a stop
part-way says what is stored, and the same command run again resumes where it stopped.
Hostile files and export targets are one clear line, with nothing written."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from eventlab import StoredEvent, WriteConflictError
from eventlab._core import races
from eventlab._core.bson_values import CODEC_OPTIONS
from eventlab._core.event_codec import stored_document
from eventlab._core.lifecycle import STREAM_DELETED
from eventlab.cli import app
from eventlab.workbench import dump_jsonl, load_jsonl
from eventlab.workbench._files import SCHEMA

runner = CliRunner()
START = datetime(2026, 3, 1, tzinfo=UTC)
TOTAL = 2_101  # a chunk is 2,000 events: the last chunk holds 101


def _events(count: int = TOTAL) -> list[StoredEvent]:
    return [
        StoredEvent(
            event_id=uuid.UUID(int=position),
            event_type="Noted",
            aggregate_id=f"s-{(position - 1) // 3}",
            aggregate_type="Note",
            version=(position - 1) % 3 + 1,
            payload={"n": position, "price": Decimal(f"{position}.10")},
            metadata={},
            occurred_at=START + timedelta(seconds=position),
            recorded_at=START + timedelta(seconds=position, milliseconds=1),
            position=position,
        )
        for position in range(1, count + 1)
    ]


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    dump_jsonl(_events(), path)
    return path


def _target(mongo_uri: str, database_name: str) -> list[str]:
    return ["--uri", mongo_uri, "--database", database_name]


def _stored(mongo_uri: str, database_name: str) -> list[dict[str, Any]]:
    with MongoClient(mongo_uri) as client:
        events = client[database_name].get_collection("domain_events", codec_options=CODEC_OPTIONS)
        return list(events.find({"aggregate_id": {"$exists": True}}, sort=[("position", 1)]))


def _insert(mongo_uri: str, database_name: str, event: StoredEvent) -> None:
    """Another writer's event, stored directly."""
    with MongoClient(mongo_uri) as client:
        events = client[database_name].get_collection("domain_events", codec_options=CODEC_OPTIONS)
        events.insert_one(stored_document(event))


def _other(event: StoredEvent, position: int) -> StoredEvent:
    return replace(event, payload={"n": -1}, position=position)


@pytest.mark.parametrize("preserve", [False, True], ids=["append", "restore"])
def test_an_id_stored_with_other_content_in_the_last_chunk_refuses_and_writes_nothing(
    mongo_uri: str, database_name: str, export_file: Path, preserve: bool
) -> None:
    last = _events()[-1]
    _insert(mongo_uri, database_name, _other(last, 1))
    flags = ["--preserve-positions"] if preserve else []
    result = runner.invoke(
        app, ["import", str(export_file), *_target(mongo_uri, database_name), *flags]
    )
    assert result.exit_code == 1, result.output
    assert str(last.event_id) in result.output and "Nothing was imported" in result.output
    assert "Traceback" not in result.output
    assert [doc["_id"] for doc in _stored(mongo_uri, database_name)] == [last.event_id]


def test_a_stream_stored_elsewhere_is_named_and_nothing_is_written(
    mongo_uri: str, database_name: str, export_file: Path
) -> None:
    stream = _events()[-1].aggregate_id
    stranger = replace(_events()[-1], event_id=uuid.uuid4(), version=1, position=1)
    _insert(mongo_uri, database_name, replace(stranger, aggregate_id=stream))
    result = runner.invoke(app, ["import", str(export_file), *_target(mongo_uri, database_name)])
    assert result.exit_code == 1
    assert f"{stream!r} (stored up to v1; the file's next event, v1, follows v0)" in result.output
    assert len(_stored(mongo_uri, database_name)) == 1


@pytest.mark.parametrize("preserve", [False, True], ids=["append", "restore"])
def test_a_stop_in_the_last_chunk_says_what_is_stored_and_a_rerun_resumes(
    mongo_uri: str, database_name: str, export_file: Path, preserve: bool
) -> None:
    reached: list[int] = []

    def fail_transiently_at_the_last_chunk() -> None:
        reached.append(1)
        if len(reached) == 2:
            raise WriteConflictError("another transaction modified the counter first")

    flags = ["--preserve-positions"] if preserve else []
    command = ["import", str(export_file), *_target(mongo_uri, database_name), *flags]
    with races.acting_at_sync("import.before_chunk", fail_transiently_at_the_last_chunk, times=2):
        stopped = runner.invoke(app, command)
    assert stopped.exit_code == 1, stopped.output
    assert "import stopped" in stopped.output
    assert "the file's first 2,000 of 2,101 events are stored" in stopped.output
    assert "Run the same command again to resume" in stopped.output
    assert len(_stored(mongo_uri, database_name)) == 2_000
    resumed = runner.invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    if preserve:
        assert "restored 101 events" in resumed.output
        assert "2,000 were stored already (resumed)" in resumed.output
    else:
        assert "imported 101 new events" in resumed.output
        assert "skipped 2,000 events already stored" in resumed.output
    stored = _stored(mongo_uri, database_name)
    assert [doc["_id"] for doc in stored] == [e.event_id for e in _events()]
    assert [doc["payload"]["n"] for doc in stored] == list(range(1, TOTAL + 1))
    if preserve:
        assert [doc["position"] for doc in stored] == list(range(1, TOTAL + 1))


def test_a_conflicting_writer_during_the_import_is_named_with_what_was_stored(
    mongo_uri: str, database_name: str, export_file: Path
) -> None:
    last = _events()[-1]
    reached: list[int] = []

    def another_writer_stores_other_content() -> None:
        reached.append(1)
        if len(reached) == 2:
            _insert(mongo_uri, database_name, _other(last, 9_999))

    command = ["import", str(export_file), *_target(mongo_uri, database_name)]
    with races.acting_at_sync("import.before_chunk", another_writer_stores_other_content, times=2):
        stopped = runner.invoke(app, command)
    assert stopped.exit_code == 1, stopped.output
    assert str(last.event_id) in stopped.output and "stored with other content" in stopped.output
    assert "the file's first 2,000 of 2,101 events are stored" in stopped.output
    assert len(_stored(mongo_uri, database_name)) == 2_001  # 2,000 and the other writer's


def test_a_writer_starting_a_stream_of_the_last_chunk_meanwhile_stops_the_import_clearly(
    mongo_uri: str, database_name: str, export_file: Path
) -> None:
    # s-667 starts at position 2,002, in the last chunk: another writer starts it first.
    first = next(e for e in _events() if e.aggregate_id == "s-667")
    theirs = replace(first, event_id=uuid.uuid4(), payload={"n": -1}, position=9_999)
    reached: list[int] = []

    def another_writer_starts_the_stream() -> None:
        reached.append(1)
        if len(reached) == 2:
            _insert(mongo_uri, database_name, theirs)

    command = ["import", str(export_file), *_target(mongo_uri, database_name)]
    with races.acting_at_sync("import.before_chunk", another_writer_starts_the_stream, times=2):
        stopped = runner.invoke(app, command)
    assert stopped.exit_code == 1, stopped.output
    _one_clear_line(
        stopped.output, "import stopped", "s-667", "the file's first 2,000 of 2,101 events"
    )


def test_a_conflict_inside_a_chunk_counts_what_its_earlier_transactions_stored(
    mongo_uri: str, database_name: str, export_file: Path
) -> None:
    # s-167 starts at position 502: in the second transaction (of 500 events) of chunk 1.
    first = next(e for e in _events() if e.aggregate_id == "s-167")
    theirs = replace(first, event_id=uuid.uuid4(), payload={"n": -1}, position=9_999)
    command = ["import", str(export_file), *_target(mongo_uri, database_name)]
    with races.acting_at_sync(
        "import.before_chunk", lambda: _insert(mongo_uri, database_name, theirs), times=1
    ):
        stopped = runner.invoke(app, command)
    assert stopped.exit_code == 1, stopped.output
    _one_clear_line(
        stopped.output,
        "s-167",
        "the file's first 500 of 2,101 events are stored",
        "Once the conflict is resolved, run the same command again",
    )
    assert len(_stored(mongo_uri, database_name)) == 501  # 500 and the other writer's


def test_a_file_holding_an_event_id_twice_is_refused_before_anything_is_written(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    events = _events(5)
    twice = [*events, replace(events[0], aggregate_id="elsewhere", version=1, position=6)]
    path = tmp_path / "twice.jsonl"
    dump_jsonl(twice, path)
    result = runner.invoke(app, ["import", str(path), *_target(mongo_uri, database_name)])
    assert result.exit_code == 1, result.output
    _one_clear_line(result.output, "an event id twice", str(events[0].event_id))
    with MongoClient(mongo_uri) as client:
        assert database_name not in client.list_database_names()


def test_a_restore_into_a_store_of_other_events_is_refused(
    mongo_uri: str, database_name: str, export_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.jsonl"
    dump_jsonl([replace(e, event_id=uuid.uuid4()) for e in _events(5)], other)
    target = _target(mongo_uri, database_name)
    assert runner.invoke(app, ["import", str(other), *target]).exit_code == 0
    refused = runner.invoke(app, ["import", str(export_file), *target, "--preserve-positions"])
    assert refused.exit_code == 1
    assert "the store holds 5 events that are not the start of this file" in refused.output
    assert len(_stored(mongo_uri, database_name)) == 5


def test_a_restore_already_complete_writes_nothing_again(
    mongo_uri: str, database_name: str, export_file: Path
) -> None:
    command = ["import", str(export_file), *_target(mongo_uri, database_name)]
    assert runner.invoke(app, [*command, "--preserve-positions"]).exit_code == 0
    again = runner.invoke(app, [*command, "--preserve-positions"])
    assert again.exit_code == 0, again.output
    assert "restored 0 events" in again.output and "2,101 were stored already" in again.output


@pytest.mark.parametrize("preserve", [False, True], ids=["append", "restore"])
def test_a_file_is_parsed_once_up_to_the_kept_size_and_read_again_above_it(
    mongo_uri: str,
    database_name: str,
    export_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    preserve: bool,
) -> None:
    from eventlab.cli import _importing
    from eventlab.workbench import _files

    reads: list[Path] = []
    original = _files.iter_event_chunks

    def counted(path: Path, kind: Any) -> Any:
        reads.append(path)
        return original(path, kind)

    monkeypatch.setattr(_files, "iter_event_chunks", counted)
    how = ["--preserve-positions"] if preserve else []
    held = runner.invoke(
        app, ["import", str(export_file), *how, *_target(mongo_uri, "h" + database_name)]
    )
    assert held.exit_code == 0, held.output
    assert len(reads) == 1, "a file under the kept size is parsed once"
    reads.clear()
    monkeypatch.setattr(_importing, "KEPT_EVENTS", TOTAL - 1)
    again = runner.invoke(
        app, ["import", str(export_file), *how, *_target(mongo_uri, database_name)]
    )
    assert again.exit_code == 0, again.output
    assert len(reads) > 1, "a file over the kept size is read again for the next passes"
    fields = ("_id", "aggregate_id", "version", "payload") + (("position",) if preserve else ())
    assert [{k: d[k] for k in fields} for d in _stored(mongo_uri, database_name)] == [
        {k: d[k] for k in fields} for d in _stored(mongo_uri, "h" + database_name)
    ]
    assert len(_stored(mongo_uri, database_name)) == TOTAL


# -- what the writes would refuse, refused before them ----------------------------------


@pytest.mark.parametrize(
    ("preserve", "change", "expected"),
    [
        (False, {"aggregate_id": "dcb:evil"}, "reserved for DCB events"),
        (False, {"event_type": STREAM_DELETED}, "reserved for the stream lifecycle"),
        (False, {"aggregate_id": "nul\x00inside"}, "NUL character"),
        (True, {"aggregate_id": "nul\x00inside"}, "NUL character"),
        (True, {"position": None}, "has no position"),
    ],
    ids=["dcb-stream", "marker-type", "nul-append", "nul-restore", "no-position"],
)
def test_an_event_the_writes_would_refuse_in_the_last_chunk_writes_nothing(
    mongo_uri: str,
    database_name: str,
    tmp_path: Path,
    preserve: bool,
    change: dict[str, Any],
    expected: str,
) -> None:
    """An append refuses a marker's type and a DCB stream, every write a NUL in a stream id,
    a restore an event without its position: in a file's last chunk (after 2,000 events
    that could be written) each is refused by pass 1, and nothing is written."""
    events = _events()
    # The last chunk's events, streams of their own (the first 2,000 stay whole), the first
    # of them changed.
    events[2_000:] = [replace(e, aggregate_id=f"t-{e.position}", version=1) for e in events[2_000:]]
    events[2_000] = replace(events[2_000], **change)
    path = tmp_path / "late.jsonl"
    dump_jsonl(events, path)
    flags = ["--preserve-positions"] if preserve else []
    result = runner.invoke(app, ["import", str(path), *flags, *_target(mongo_uri, database_name)])
    assert result.exit_code == 1, result.output
    _one_clear_line(result.output, "late.jsonl", expected, "nothing was imported")
    with MongoClient(mongo_uri) as client:
        assert database_name not in client.list_database_names()


# -- hostile files -------------------------------------------------------------------------


def _one_clear_line(output: str, *expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ") and "Traceback" not in output and "bug" not in output
    for text in expected:
        assert text in lines[0], lines[0]


def test_hostile_files_are_one_clear_line_and_write_nothing(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    dump_jsonl(_events(3), good)
    lines = good.read_bytes().splitlines(keepends=True)
    cases: dict[str, tuple[bytes | None, tuple[str, ...]]] = {
        "latin1.jsonl": (lines[0] + b'{"caf\xe9": 1}\n', ("latin1.jsonl:2:", "not UTF-8", "0xe9")),
        "empty.jsonl": (b"", ("holds no events",)),
        "blank.jsonl": (b"\n\n  \n", ("holds no events",)),
        "a-dir.jsonl": (None, ("is a directory",)),
        "a-dir.parquet": (None, ("is a directory",)),
        "empty.parquet": (b"", ("not a Parquet file of events",)),
    }
    huge = load_jsonl(good)[0]
    big = tmp_path / "big.jsonl"
    dump_jsonl([replace(huge, payload={"blob": "x" * 20_000_000})], big)
    operator_id = tmp_path / "operator.jsonl"
    operator_id.write_text(lines[0].decode().replace('"s-0"', '{"$gt": ""}'))
    negative = tmp_path / "negative.jsonl"
    negative.write_text(lines[0].decode().replace('"version":1', '"version":-5'))
    too_big_int = tmp_path / "int.jsonl"
    too_big_int.write_text(lines[0].decode().replace('"n":1', f'"n":{2**70}'))
    first = lines[0].decode()
    assert '"price":{"$numberDecimal":"1.10"}' in first
    hostile_lines = {
        # decimals json_util cannot read exactly, in every spelling
        **{
            f"decimal-{i}.jsonl": (
                first.replace('"1.10"', json.dumps(text)),
                ("decimal",),  # malformed Extended JSON, or a signaling NaN named
            )
            for i, text in enumerate([" 1.5 ", "1_000", "0x10", "", "sNaN", "1" * 36, "1e6200"])
        },
        "deep.jsonl": (
            first.replace('"n":1', '"n":' + '{"a":' * 5000 + "1" + "}" * 5000),
            ("nested too deeply",),
        ),
        "surrogate.jsonl": (first.replace('"n":1', '"n":"\\ud800"'), ("not valid Unicode",)),
        "envelope-long.jsonl": (
            first.replace('"version":1', '"version":{"$numberLong":"1"}'),
            ("version must be a JSON integer",),
        ),
        "envelope-date.jsonl": (
            first.replace('"occurred_at":"', '"occurred_at":{"$date":"').replace(
                '+00:00","recorded_at"', '+00:00"},"recorded_at"', 1
            ),
            ("occurred_at must be a JSON string",),
        ),
        "envelope-uuid.jsonl": (
            first.replace('"event_id":"', '"event_id":{"$uuid":"').replace(
                '","event_type"', '"},"event_type"', 1
            ),
            ("event_id must be a JSON string",),
        ),
        "deep-101.jsonl": (
            first.replace('"n":1', '"n":' + '{"a":' * 99 + "1" + "}" * 99),
            ("nested deeper than MongoDB stores",),
        ),
        "position.jsonl": (first.replace('"position":1', '"position":-5'), ("a position below 1",)),
    }
    for name, (text, _) in hostile_lines.items():
        (tmp_path / name).write_text(text)
    # A Parquet file's payload column holds Extended JSON text: nested 5,000 deep there.
    deep_parquet = tmp_path / "deep.parquet"
    record = json.loads(first)
    row = {
        **{name: record.get(name) for name in SCHEMA.names},
        "occurred_at": datetime.fromisoformat(record["occurred_at"]),
        "recorded_at": datetime.fromisoformat(record["recorded_at"]),
        "payload": '{"a":' * 5000 + "1" + "}" * 5000,
        "metadata": "{}",
    }
    pq.write_table(pa.Table.from_pylist([row], schema=SCHEMA), deep_parquet)
    # Rows a JSON Lines file could not hold either: each refused by name, with its row.
    hostile_rows = {
        "null-payload.parquet": ({"payload": None}, ("row 1", "payload must be a dict")),
        "negative.parquet": ({"version": -5}, ("row 1", "version must be an int >= 1")),
        "array-payload.parquet": ({"payload": "[1, 2]"}, ("row 1", "payload must be a dict")),
    }
    for name, (change, _) in hostile_rows.items():
        hostile = {**row, "payload": "{}", **change}
        pq.write_table(pa.Table.from_pylist([hostile], schema=SCHEMA), tmp_path / name)
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
        result = runner.invoke(app, ["import", str(path), *_target(mongo_uri, database_name)])
        assert result.exit_code == 1, (name, result.output)
        _one_clear_line(result.output, *expected)
    for path, expected in (
        (big, ("takes 20,000,", "limit", "nothing was imported")),
        (operator_id, ("operator.jsonl:1:", "aggregate_id")),
        (negative, ("negative.jsonl:1:", "version")),
        (too_big_int, ("64-bit", "payload.n")),
        *((tmp_path / name, expected) for name, (_, expected) in hostile_lines.items()),
        (deep_parquet, ("deep.parquet", "nested too deeply")),
        *((tmp_path / name, expected) for name, (_, expected) in hostile_rows.items()),
    ):
        result = runner.invoke(app, ["import", str(path), *_target(mongo_uri, database_name)])
        assert result.exit_code == 1, (path.name, result.output)
        _one_clear_line(result.output, *expected)
    with MongoClient(mongo_uri) as client:
        assert database_name not in client.list_database_names()


# -- export targets ------------------------------------------------------------------------


def test_export_refuses_to_overwrite_without_force_and_leaves_nothing_on_failure(
    mongo_uri: str, database_name: str, export_file: Path, tmp_path: Path
) -> None:
    target = _target(mongo_uri, database_name)
    assert runner.invoke(app, ["import", str(export_file), *target]).exit_code == 0
    existing = tmp_path / "mine.jsonl"
    existing.write_text("keep me\n")
    refused = runner.invoke(app, ["export", str(existing), *target])
    assert refused.exit_code == 1
    _one_clear_line(refused.output, "exists: pass --force to overwrite it")
    assert existing.read_text() == "keep me\n"
    directory = tmp_path / "a-directory.jsonl"
    directory.mkdir()
    on_dir = runner.invoke(app, ["export", str(directory), *target, "--force"])
    assert on_dir.exit_code == 1
    _one_clear_line(on_dir.output, "is a directory")
    forced = runner.invoke(app, ["export", str(existing), *target, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(load_jsonl(existing)) == TOTAL
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a-directory.jsonl", "events.jsonl", "mine.jsonl"]
    )
    assert list(directory.iterdir()) == []


def test_export_never_writes_through_a_link_a_pipe_or_to_dash_and_import_refuses_a_pipe(
    mongo_uri: str, database_name: str, export_file: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """An export is renamed into place: it would replace a symbolic link (or /dev/stdout, a
    link too) with a regular file rather than write through it; an import reads its file
    twice, which a pipe cannot give. Each is one line, and nothing is written or replaced."""
    import os

    target = _target(mongo_uri, database_name)
    assert runner.invoke(app, ["import", str(export_file), *target]).exit_code == 0
    kept = tmp_path / "kept.txt"
    kept.write_text("keep\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(kept)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    monkeypatch.chdir(tmp_path)
    for name, expected in ((str(link), "is a symbolic link"), ("-", "give its name, not -")):
        refused = runner.invoke(app, ["export", name, *target, "--force"])
        assert refused.exit_code == 1, refused.output
        _one_clear_line(refused.output, expected)
    assert link.is_symlink() and kept.read_text() == "keep\n" and not (tmp_path / "-").exists()
    piped = runner.invoke(app, ["import", str(fifo), *target])  # would wait for ever if read
    assert piped.exit_code == 1
    _one_clear_line(piped.output, "is not a regular file (a pipe or a device)")
