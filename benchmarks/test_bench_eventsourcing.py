"""Suite 9, the `eventsourcing` library's persistence modules side by side: one-event inserts
into an application recorder, as the library's own ``test_performance`` measures them, for its
POPO (in memory) and SQLite modules and for eventlab's MongoDB module, on the same machine.

POPO and SQLite are in-process; eventlab's module talks to a server over the wire, with a
transaction per insert: the comparison shows what that costs, it is not a race.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

from eventlab.eventsourcing import MongoApplicationRecorder, MongoDatastore


@pytest.fixture(params=["popo", "sqlite", "eventlab"])
def recorder(request: pytest.FixtureRequest, bench_uri: str, tmp_path: Path) -> Iterator[Any]:
    if request.param == "popo":
        yield POPOApplicationRecorder()
    elif request.param == "sqlite":
        datastore = SQLiteDatastore(db_name=str(tmp_path / "bench.db"))
        sqlite = SQLiteApplicationRecorder(datastore)
        sqlite.create_table()
        yield sqlite
        datastore.close()
    else:
        database = f"bench_es_{uuid.uuid4().hex[:8]}"
        mongo = MongoDatastore(bench_uri, database)
        recorder = MongoApplicationRecorder(mongo, "stored_events")
        recorder.create_table()
        yield recorder
        mongo.client.drop_database(database)
        mongo.close()


def _insert(recorder: ApplicationRecorder) -> None:
    recorder.insert_events(
        [StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b"s")]
    )


def test_eventsourcing_one_event_insert(benchmark: Any, recorder: ApplicationRecorder) -> None:
    """One event per insert, 100 rounds after 10 warm-up inserts (the library's own method)."""
    benchmark.pedantic(_insert, args=(recorder,), rounds=100, warmup_rounds=10)
    benchmark.extra_info["backend"] = type(recorder).__module__.split(".")[-1]
    assert (recorder.max_notification_id() or 0) >= 100
