"""``eventlab delete``, ``truncate``, ``retention`` and ``scavenge`` against the embedded
MongoDB-compatible server: each dry run writes nothing, each command does what its dry run said;
a wrong value is a usage error (exit code 2) before any connection is tried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from eventlab import MongoConnectionManager, MongoEventStore
from eventlab.cli import app

from .conftest import make_event

runner = CliRunner()
NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


async def _seed(uri: str, database: str) -> None:
    async with MongoConnectionManager(uri, database=database) as conn:
        store = MongoEventStore(conn)
        for sid in ("order-1", "order-2", "order-3"):
            await store.append(sid, [make_event(sid, v) for v in range(1, 11)], 0)


async def _state(uri: str, database: str) -> tuple[int, list[dict[str, Any]], list[int]]:
    """Events stored, stream metadata, and the versions each stream reads."""
    async with MongoConnectionManager(uri, database=database) as conn:
        store = MongoEventStore(conn)
        metadata = await conn.database["domain_events_streams"].find({}).to_list(None)
        lengths = []
        for sid in ("order-1", "order-2", "order-3"):
            try:
                lengths.append(len(await store.read_stream(sid)))
            except Exception:
                lengths.append(-1)
        return (
            await store.count(),
            [{k: v for k, v in m.items() if k != "updated_at"} for m in metadata],
            lengths,
        )


def test_each_command_and_its_dry_run(mongo_uri: str, database_name: str) -> None:
    asyncio.run(_seed(mongo_uri, database_name))
    where = ["--uri", mongo_uri, "--database", database_name]
    before = asyncio.run(_state(mongo_uri, database_name))
    dry_runs = [
        ("delete", "order-1", "--expected-version", "10", "--dry-run"),
        ("delete", "order-3", "--expected-version", "10", "--permanent", "--dry-run"),
        ("truncate", "order-2", "--before", "8", "--dry-run"),
        ("retention", "order-2", "--max-count", "2", "--max-age", "7d", "--dry-run"),
        ("scavenge", "--dry-run"),
    ]
    for args in dry_runs:
        result = invoke(*args, *where)
        assert result.exit_code == 0, result.output
        assert "nothing written (dry run)" in result.output
    assert asyncio.run(_state(mongo_uri, database_name)) == before
    stale = invoke("delete", "order-1", "--expected-version", "3", "--dry-run", *where)
    assert stale.exit_code == 1 and "expected version 3, but it is at version 10" in stale.output

    for args, said in [
        (("delete", "order-1", "--expected-version", "10"), "marker at version 11"),
        (("delete", "order-3", "--expected-version", "any", "--permanent"), "permanently"),
        (("truncate", "order-2", "--before", "8"), "reads start at version 8"),
        (("retention", "order-2", "--max-count", "2"), "max count 2"),
    ]:
        result = invoke(*args, *where)
        assert result.exit_code == 0 and said in result.output, result.output
    count, _, lengths = asyncio.run(_state(mongo_uri, database_name))
    assert count == 32 and lengths == [0, 2, -1]
    dry = invoke("scavenge", "--dry-run", *where)
    assert "would remove 28 events from 3 streams" in dry.output, dry.output
    done = invoke("scavenge", "--batch-size", "3", *where)
    assert done.exit_code == 0 and "removed 28 events from 3 streams" in done.output, done.output
    assert asyncio.run(_state(mongo_uri, database_name))[0] == 4  # order-2 v9, v10; two markers
    again = invoke("scavenge", *where)
    assert "removed 0 events" in again.output
    refused = invoke("delete", "order-3", "--expected-version", "11", *where)
    assert refused.exit_code == 1 and "deleted permanently" in refused.output


def test_a_dry_run_refuses_what_the_run_refuses(mongo_uri: str, database_name: str) -> None:
    """Same exit code, same message, and nothing written by either: a permanently deleted
    stream, a stale or unmet expected version, a truncation beyond the next version."""
    asyncio.run(_seed(mongo_uri, database_name))
    where = ["--uri", mongo_uri, "--database", database_name]
    deleted = invoke("delete", "order-3", "--expected-version", "10", "--permanent", *where)
    assert deleted.exit_code == 0, deleted.output
    before = asyncio.run(_state(mongo_uri, database_name))
    refused = [
        (("truncate", "order-3", "--before", "2"), "deleted permanently at version 11"),
        (("retention", "order-3", "--max-count", "1"), "deleted permanently at version 11"),
        (("retention", "order-3"), "deleted permanently at version 11"),
        (("delete", "order-3", "--expected-version", "11"), "deleted permanently at version 11"),
        (("delete", "order-3", "--expected-version", "any"), "deleted permanently"),
        (("delete", "order-1", "--expected-version", "3"), "expected version 3, but it is at"),
        (
            ("delete", "order-9", "--expected-version", "exists"),
            "STREAM_EXISTS, but it is at version",
        ),
        (("truncate", "order-1", "--before", "12"), "beyond stream 'order-1''s next version"),
    ]
    for args, said in refused:
        run, dry = invoke(*args, *where), invoke(*args, "--dry-run", *where)
        assert (run.exit_code, dry.exit_code) == (1, 1), (args, run.output, dry.output)
        assert said in run.output and dry.output == run.output, (args, dry.output)
    assert asyncio.run(_state(mongo_uri, database_name)) == before


@pytest.mark.parametrize(
    "args",
    [
        # Numbers are ASCII digits only (int() would take other scripts' digits, signs, spaces).
        ("delete", "s", "--expected-version", "\u0663"),
        ("delete", "s", "--expected-version", "+3"),
        ("delete", "s", "--expected-version", " 3"),
        ("truncate", "s", "--before", "\u0662"),
        ("truncate", "s", "--before", "1_0"),
        ("retention", "s", "--max-count", "\u0662"),
        ("retention", "s", "--max-count", "99999999999999999999"),
        ("retention", "s", "--max-age", "\u0663d"),
        ("retention", "s", "--max-age", "365001d"),
        ("scavenge", "--batch-size", "\u0663"),
        # The Python API's limits, checked before connecting.
        ("delete", "s", "--expected-version", "1", "--reason", "r" * 1001),
        ("delete", "s", "--expected-version", "1", "--reason", "a\x00b"),
        ("delete", "s-\udcff", "--expected-version", "1"),  # an undecodable byte in argv
        ("truncate", "y" * 1025, "--before", "1"),
        ("delete", "", "--expected-version", "1"),
        ("delete", "dcb:7", "--expected-version", "1"),
        ("delete", "s", "--expected-version", "-1"),
        ("delete", "s", "--expected-version", "1.5"),
        ("delete", "s", "--expected-version", "99999999999999999999"),
        ("delete", "s", "--expected-version", '{"$gt": 0}'),
        ("delete", "s"),
        ("truncate", "s", "--before", "0"),
        ("truncate", "s", "--before", "-3"),
        ("truncate", "s", "--before", "x"),
        ("retention", "s", "--max-count", "0"),
        ("retention", "s", "--max-age", "5x"),
        ("retention", "s", "--max-age", "0d"),
        ("retention", "s", "--max-age", "-1"),
        ("scavenge", "--batch-size", "0"),
        ("scavenge", "--batch-size", "20000"),
        ("scavenge", "--events-collection", "a$b"),
        ("scavenge", "--database", "a.b/c"),
    ],
)
def test_wrong_values_are_usage_errors_before_connecting(args: tuple[str, ...]) -> None:
    result = invoke(*args, "--uri", NOWHERE)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "cannot reach" not in result.output
