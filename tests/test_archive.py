"""The archive on MongoDB, beyond the contract suite (eventlab.contracts._archive, run by
tests/test_contracts.py): a job SIGKILLed at each of its race points leaves every event live,
or archived and readable, never lost and never read twice, and a rerun completes it; another
process reads through the archive it did not write; a unit of work reads through it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventlab import MongoConnectionManager, MongoEventStore, StoredEvent, run_unit_of_work

CHILD = Path(__file__).with_name("_archive_child.py")
STALL = 120.0
"""Seconds after which a child that has not said what it was expected to say is stalled."""
EVENTS = "archived_events"
STREAMS, VERSIONS = 300, 6
"""1,800 events, 1,200 of them archived (each stream's first and last stay live): the removal
and the restore take two chunks each."""


def event(sid: str, version: int) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Noted",
        aggregate_id=sid,
        aggregate_type="Note",
        version=version,
        payload={"n": version, "text": "x" * 40},
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture
async def store(connection: MongoConnectionManager) -> MongoEventStore:
    return MongoEventStore(connection, events_collection=EVENTS)


@pytest.fixture
async def written(store: MongoEventStore) -> list[StoredEvent]:
    stored: list[StoredEvent] = []
    for n in range(STREAMS):
        sid = f"s-{n:04d}"
        stored += await store.append(sid, [event(sid, v) for v in range(1, VERSIONS + 1)], 0)
    return stored


class JobChild:
    """An archive or restore job in a child process, stopped at a race point."""

    def __init__(self, uri: str, database: str, location: Path, mode: str, point: str, reach: int):
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), uri, database, EVENTS, str(location), mode, point,
             str(reach)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )  # fmt: skip

    async def said(self) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), STALL)
        return line.strip()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)


async def every_event_once(store: MongoEventStore, written: list[StoredEvent]) -> None:
    """The log, and every stream, read exactly what was written: nothing lost, nothing twice."""
    log = await store.read_all().to_list()
    assert [e.event_id for e in log] == [e.event_id for e in written]
    assert [e.position for e in log] == [e.position for e in written]
    for n in range(0, STREAMS, 7):
        sid = f"s-{n:04d}"
        stream = await store.read_stream(sid)
        assert [e.event_id for e in stream] == [
            e.event_id for e in written if e.aggregate_id == sid
        ]


@pytest.mark.parametrize(
    ("point", "reach"),
    [("archive.files_written", 1), ("archive.removing", 1), ("archive.removing", 2)],
)
async def test_an_archive_killed_at_a_race_point_loses_nothing_and_a_rerun_completes(
    store: MongoEventStore,
    written: list[StoredEvent],
    mongo_uri: str,
    database_name: str,
    tmp_path: Path,
    point: str,
    reach: int,
) -> None:
    location = tmp_path / "archive"
    child = JobChild(mongo_uri, database_name, location, "archive", point, reach)
    try:
        assert await child.said() == f"AT {point}"
    finally:
        child.kill()
    live = await store.count()
    marker = await store.log.archive_reader.markers.get()
    if point == "archive.files_written":
        assert live == len(written) and marker is None  # the files are named by nothing
    else:
        assert marker is not None and marker.state == "removing"
        assert live == len(written) - (reach - 1) * 1000
    await every_event_once(store, written)
    report = await store.archive(location, through=written[-1].position)
    assert await store.count() == 2 * STREAMS  # each stream's first and last events
    marker = await store.log.archive_reader.markers.get()
    assert marker is not None and marker.state == "archived" and marker.events == 1200
    assert report.total == 1200
    await every_event_once(store, written)


@pytest.mark.parametrize("reach", [1, 2])
async def test_a_restore_killed_part_way_loses_nothing_and_a_rerun_completes(
    store: MongoEventStore,
    written: list[StoredEvent],
    mongo_uri: str,
    database_name: str,
    tmp_path: Path,
    reach: int,
) -> None:
    location = tmp_path / "archive"
    await store.archive(location, through=written[-1].position)
    child = JobChild(mongo_uri, database_name, location, "restore", "archive.restoring", reach)
    try:
        assert await child.said() == "AT archive.restoring"
    finally:
        child.kill()
    marker = await store.log.archive_reader.markers.get()
    assert marker is not None and marker.state == "restoring"
    await every_event_once(store, written)
    with pytest.raises(Exception, match="being restored"):
        await store.archive(location, through=10)
    report = await store.restore_archive()
    assert report.restored == 1200 and await store.count() == len(written)
    assert await store.log.archive_reader.markers.get() is None
    await every_event_once(store, written)


async def test_another_process_reads_through_an_archive_it_did_not_write(
    store: MongoEventStore,
    written: list[StoredEvent],
    mongo_uri: str,
    database_name: str,
    tmp_path: Path,
) -> None:
    child = JobChild(mongo_uri, database_name, tmp_path / "a", "archive", "archive.removing", 99)
    try:
        assert await child.said() == "DONE"
    finally:
        child.process.communicate(timeout=30)
    async with MongoConnectionManager(mongo_uri, database=database_name) as other:
        reader = MongoEventStore(other, events_collection=EVENTS)
        assert await reader.count() == 2 * STREAMS
        await every_event_once(reader, written)


async def test_a_unit_of_work_reads_a_stream_through_the_archive(
    store: MongoEventStore, written: list[StoredEvent], connection: MongoConnectionManager
) -> None:
    await store.archive(f"memory://eventlab-tests/{uuid.uuid4().hex}", through=100)
    sid = written[0].aggregate_id

    async def work(uow: Any) -> list[StoredEvent]:
        events = await store.read_stream(sid, uow=uow)
        await store.append(sid, [event(sid, VERSIONS + 1)], VERSIONS, uow=uow)
        return events

    events = await run_unit_of_work(connection, work)
    assert [e.version for e in events] == list(range(1, VERSIONS + 1))
    assert await store.get_current_version(sid) == VERSIONS + 1


async def test_a_flat_export_and_a_frame_read_through_the_archive(
    store: MongoEventStore, written: list[StoredEvent], tmp_path: Path
) -> None:
    from eventlab.workbench import export_flat, read_frame

    await store.archive(tmp_path / "archive", through=written[-1].position)
    frame = await read_frame(store, progress=False)
    assert list(frame["event_id"].astype(str)) == [str(e.event_id) for e in written]
    last = await read_frame(store, last=10, progress=False)
    assert list(last["position"]) == [e.position for e in written[-10:]]
    typed = await read_frame(store, event_types=["Noted"], streams=["s-0001"], progress=False)
    assert list(typed["version"]) == list(range(1, VERSIONS + 1))
    exported = await export_flat(store, tmp_path / "flat", progress=False)
    assert exported.written == len(written)
