"""``eventlab archive`` and ``eventlab archive restore``: a dry run that writes nothing, an
archive and a restore that say what they did, a location of another store's refused (exit 1),
and hostile values refused as usage errors (exit 2) before anything is opened."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent
from eventlab.cli import app

from .test_cli_help import HEAVY, eventlab

runner = CliRunner()


def event(sid: str, version: int) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Noted",
        aggregate_id=sid,
        aggregate_type="Note",
        version=version,
        payload={"n": version},
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture
async def store(connection: MongoConnectionManager) -> MongoEventStore:
    store = MongoEventStore(connection)
    for n in range(4):
        await store.append(f"s{n}", [event(f"s{n}", v) for v in (1, 2, 3)], 0)
    return store


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


async def run(*args: str) -> tuple[int, str]:
    """The command in a thread of its own: it runs its own event loop, as from a shell."""
    return await asyncio.to_thread(invoke, *args)


@pytest.mark.parametrize("args", [("archive", "--help"), ("archive", "restore", "--help")])
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    code, output, stderr, imported = eventlab(*args)
    assert code == 0, stderr
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert all(len(line) <= 80 for line in output.splitlines())
    assert "--dry-run" in output


async def test_dry_run_then_archive_then_restore(
    store: MongoEventStore, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    target = tmp_path / "archive"
    where = ["--uri", mongo_uri, "--database", database_name]
    code, output = await run("archive", "--to", str(target), "--through", "12", "--dry-run", *where)
    assert code == 0, output
    assert "would archive 4 events (positions 2-11)" in output and "8 kept live" in output
    assert not target.exists() and await store.count() == 12
    code, output = await run("archive", "--to", str(target), "--through", "12", *where)
    assert code == 0, output
    assert "archived 4 events (positions 2-11)" in output and "holds 4 events" in output
    assert await store.count() == 8 and len(await store.read_all().to_list()) == 12
    code, output = await run("stats", *where)
    assert code == 0 and "4 more archived at" in output and "0 missing" in output, output
    code, output = await run("archive", "restore", "--dry-run", *where)
    assert code == 0 and "would restore 4 events" in output and await store.count() == 8
    code, output = await run("archive", "restore", *where)
    assert code == 0 and "restored 4 events" in output, output
    assert await store.count() == 12
    code, output = await run("archive", "restore", *where)
    assert code == 0 and "nothing is archived" in output


async def test_a_restore_leaves_out_what_a_scavenge_removed(
    store: MongoEventStore, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    where = ["--uri", mongo_uri, "--database", database_name]
    code, output = await run("archive", "--to", str(tmp_path / "a"), "--through", "12", *where)
    assert code == 0 and "archived 4 events" in output, output
    await store.lifecycle().truncate("s0", 3)  # hides s0's 1 (live) and 2 (archived)
    assert (await store.lifecycle().scavenge()).removed == 2
    code, output = await run("archive", "restore", "--dry-run", *where)
    assert code == 0, output
    assert "would restore 3 events" in output and "1 removed by a scavenge left out" in output
    code, output = await run("archive", "restore", *where)
    assert code == 0 and "restored 3 events" in output and "1 removed by a scavenge" in output
    assert await store.count() == 10
    assert [e.version for e in await store.read_all().to_list() if e.aggregate_id == "s0"] == [3]


async def test_a_location_of_another_store_is_refused(
    store: MongoEventStore, mongo_uri: str, database_name: str, tmp_path: Path
) -> None:
    target = tmp_path / "theirs"
    target.mkdir()
    owner = {"format": 1, "store": "other.domain_events", "incarnation": "x", "manifest": "m"}
    (target / "_eventlab_archive.json").write_text(json.dumps(owner))
    where = ["--uri", mongo_uri, "--database", database_name]
    code, output = await run("archive", "--to", str(target), "--through", "12", *where)
    assert code == 1 and "holds the archive of another store" in output, output
    assert sorted(p.name for p in target.iterdir()) == ["_eventlab_archive.json"]
    assert await store.count() == 12


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--through", "3"], "archive needs --to LOCATION"),
        (["--to", "{dir}"], "one of --through POSITION and --before TIME"),
        (["--to", "{dir}", "--through", "3", "--before", "2020-01-01T00:00Z"], "one of"),
        *(
            (["--to", "{dir}", "--through", bad], "a position is an integer")
            for bad in (
                "-1",
                "abc",
                str(2**70),
                "+5",
                " 5",
                "5_000",
                "5.0",
                "\u0661\u0662",
                "\uff15",
            )
        ),
        (["--to", "{dir}", "--before", "yesterday"], "not an ISO 8601 time"),
        (["--to", "{dir}", "--before", "2020-01-01T00:00:00"], "has no time zone"),
        (["--to", "nope-such-fs://b/x", "--through", "3"], "not a file system"),
        (["--to", "memory://user:secret@h/x", "--through", "3"], "must not carry credentials"),
        (["--to", "", "--through", "3"], "--to"),
        (["--to", "memory://x/y", "--through", "3"], "memory:// lives only as long"),
    ],
)
def test_hostile_values_are_usage_errors(tmp_path: Path, args: list[str], expected: str) -> None:
    values = [a.replace("{dir}", str(tmp_path / "a")) for a in args]
    code, output = invoke("archive", *values, "--uri", "mongodb://127.0.0.1:1")
    assert code == 2, output
    assert expected in output and "secret" not in output and "Traceback" not in output
    assert not (tmp_path / "a").exists()
