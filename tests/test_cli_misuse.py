"""The CLI misused as a new user would: every case one clean line, a non-zero exit, no
traceback, no false claim, and nothing created that was not asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventlab.cli import app

runner = CliRunner()
DATA = Path(__file__).parent.parent / "data"


def clean_failure(args: list[str], expected: str) -> str:
    result = runner.invoke(app, args)
    output = result.output
    assert result.exit_code == 1, output
    assert "Traceback" not in output, output
    assert isinstance(result.exception, SystemExit), result.exception
    assert expected in output, output
    assert len(output.strip().splitlines()) <= 2, output
    return output


def test_a_file_that_does_not_exist(tmp_path: Path) -> None:
    clean_failure(["import", str(tmp_path / "missing.jsonl")], "missing.jsonl")
    clean_failure(["gaps", "--file", str(tmp_path / "missing.jsonl")], "missing.jsonl")


def test_a_plot_format_that_is_not_an_image(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    clean_failure(
        ["gaps", "--file", str(DATA / "orders.jsonl"), "--plot", str(out)],
        ".txt is not an image format; use one of .jpeg, .jpg, .pdf, .png, .svg, .webp",
    )
    assert not out.exists()
    ok = runner.invoke(
        app, ["gaps", "--file", str(DATA / "orders.jsonl"), "--plot", str(tmp_path / "g.png")]
    )
    assert ok.exit_code == 0 and (tmp_path / "g.png").stat().st_size > 10_000


def test_a_uri_that_is_not_a_uri_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("a client was made: it would wait for a host named 'notauri'")

    monkeypatch.setattr("eventlab._mongo.connection.AsyncMongoClient", no_client)
    result = runner.invoke(app, ["stats", "--uri", "notauri"])
    assert result.exit_code == 2, result.output  # the command line is wrong
    assert "'--uri': a MongoDB URI starts with mongodb://" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--port", "-5"], "--port must be a TCP port"),
        (["serve", "--port", "99999"], "--port must be a TCP port"),
        (["serve", "--storage", "{file}"], "is a file, not a directory"),
        (["stats", "-d", "a.b"], "database name 'a.b' contains '.'"),
    ],
)
def test_a_value_that_cannot_be_right_is_a_usage_error(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    result = runner.invoke(app, [a.replace("{file}", str(a_file)) for a in args])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_gaps_reads_a_parquet_export_too(tmp_path: Path) -> None:
    from eventlab.workbench import load_jsonl
    from eventlab.workbench._files import EventFileWriter

    events = load_jsonl(DATA / "orders.jsonl")[:200]
    parquet = tmp_path / "orders.parquet"
    with EventFileWriter(parquet, "parquet") as writer:
        writer.write(events)
    from_parquet = runner.invoke(app, ["gaps", "--file", str(parquet)])
    jsonl = tmp_path / "orders.jsonl"
    jsonl.write_text("".join(line for line in (DATA / "orders.jsonl").open().readlines()[:200]))
    from_jsonl = runner.invoke(app, ["gaps", "--file", str(jsonl)])
    assert from_parquet.exit_code == 0, from_parquet.output
    assert from_parquet.output == from_jsonl.output
    assert "events                          200" in from_parquet.output


def test_an_unreachable_server_says_what_to_check() -> None:
    output = clean_failure(
        ["stats", "--uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"],
        "Is a server running there? Check the host and port",
    )
    assert "[Errno 111]" in output and "Topology Description" not in output
    assert output.rstrip().endswith("to use the embedded server"), "cut mid-word"


def test_an_unknown_aggregate(mongo_uri: str, database_name: str) -> None:
    target = ["--uri", mongo_uri, "--database", database_name]
    assert runner.invoke(app, ["migrate", *target]).exit_code == 0
    clean_failure(["replay", "no-such-order", *target], "no events stored for 'no-such-order'")


def test_a_mistyped_database_or_collection_is_an_error_that_names_what_is_there(
    mongo_uri: str, database_name: str
) -> None:
    target = ["--uri", mongo_uri, "--database", database_name]
    made = runner.invoke(app, ["migrate", *target])  # the store exists, empty
    assert made.exit_code == 0, made.output
    typo = f"{database_name[:-1]}x"
    for command in (["stats"], ["gaps"], ["export", "/dev/null"], ["replay", "order-00001"],
                    ["projections"], ["rebuild", "order_totals"]):  # fmt: skip
        clean_failure(
            [*command, "--uri", mongo_uri, "--database", typo],
            f"no database {typo!r} at mongodb://127.0.0.1:",
        )
    output = clean_failure(["stats", "--uri", mongo_uri, "-d", typo], "check --database")
    assert f"did you mean {database_name!r}?" in output
    output = clean_failure(
        ["stats", *target, "--events-collection", "domain_event"],
        f"no collection 'domain_event' in database {database_name!r}",
    )
    assert "did you mean 'domain_events'?" in output
    output = clean_failure(["stats", *target, "--events-collection", "zzz"], "no collection")
    assert "(its collections: " in output and "domain_events" in output
    from pymongo import MongoClient

    with MongoClient(mongo_uri) as client:
        assert typo not in client.list_database_names(), "a typo created nothing"
        assert "zzz" not in client[database_name].list_collection_names()
    empty = f"{database_name}_e"
    assert runner.invoke(app, ["migrate", "--uri", mongo_uri, "-d", empty]).exit_code == 0
    result = runner.invoke(app, ["stats", "--uri", mongo_uri, "-d", empty])
    assert result.exit_code == 0 and result.output == "the store is empty\n"


def test_export_into_a_missing_directory_creates_nothing(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    target = tmp_path / "nope" / "deeper" / "out.jsonl"
    clean_failure(
        ["export", str(target), "--uri", mongo_uri, "--database", database_name],
        "does not exist",
    )
    assert not (tmp_path / "nope").exists()


def test_repeated_import_and_preserving_positions_say_what_happened(
    mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    # The samples' first events (a prefix of an export in position order is an export).
    orders, chat = tmp_path / "orders.jsonl", tmp_path / "chat.jsonl"
    orders.write_text("".join((DATA / "orders.jsonl").read_text().splitlines(True)[:600]))
    chat.write_text("".join((DATA / "chat.jsonl").read_text().splitlines(True)[:400]))
    base = ["--uri", mongo_uri, "--database", database_name]
    first = runner.invoke(app, ["import", str(orders), *base])
    assert first.exit_code == 0, first.output
    assert "imported 600 new events" in first.output and "skipped 0 events" in first.output
    again = runner.invoke(app, ["import", str(orders), *base])
    assert again.exit_code == 0, again.output
    assert "imported 0 new events" in again.output
    assert "skipped 600 events already stored" in again.output
    complete = runner.invoke(app, ["import", str(orders), "--preserve-positions", *base])
    assert complete.exit_code == 0, complete.output
    assert "restored 0 events" in complete.output and "600 were stored already" in complete.output
    clean_failure(
        ["import", str(chat), "--preserve-positions", *base],
        "the store holds 600 events that are not the start of this file",
    )
    fresh = ["--uri", mongo_uri, "--database", f"{database_name}_b"]
    restored = runner.invoke(app, ["import", str(chat), "--preserve-positions", *fresh])
    assert "restored 400 events" in restored.output, restored.output


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr("eventlab.workbench.find_gaps", broken)
    args = ["gaps", "--file", str(DATA / "orders.jsonl")]
    clean_failure(args, "unexpected RuntimeError: something nobody expected")
    assert "--debug" in runner.invoke(app, args).output
    debugged = runner.invoke(app, ["--debug", *args])
    assert isinstance(debugged.exception, RuntimeError)
    # --debug belongs to its invocation: the next one without it is one line again.
    clean_failure(args, "unexpected RuntimeError: something nobody expected")
