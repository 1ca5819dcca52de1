"""The archive's contracts: events moved into Parquet files are read through them as one log
with the live collection (streams, the log, subscriptions, frames), versions keep working,
a restore puts back exactly what was there, a dry run and a refused call write nothing."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest

from .._core import races
from .._core.errors import (
    ArchiveError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    EventlabError,
)
from .._core.records import ExpectedVersion, StoredEvent
from .._follow.catch_up import CatchUpSubscription
from ..ports import EventStore
from ._support import NeedsAStore, contract_event, fields, unique

STREAMS = 3
VERSIONS = 4
KEPT = 2 * STREAMS
"""Each stream's first and last events stay live."""


def memory_location() -> str:
    return f"memory://eventlab-contracts/{uuid.uuid4().hex}"


async def write_streams(store: EventStore, streams: int = STREAMS) -> list[StoredEvent]:
    """``streams`` streams of ``VERSIONS`` events, interleaved in the log."""
    ids = [unique() for _ in range(streams)]
    written: list[StoredEvent] = []
    for version in range(1, VERSIONS + 1):
        for sid in ids:
            written += await store.append(sid, [contract_event(sid, version)], version - 1)
    return written


async def whole_log(store: EventStore) -> list[StoredEvent]:
    return await CatchUpSubscription(store.log, start=0, live=False).to_list()


def same(one: list[StoredEvent], other: list[StoredEvent]) -> bool:
    return [fields(e) for e in one] == [fields(e) for e in other]


class _Archived(NeedsAStore):
    """What the archive contracts share: a store with its streams written and archived."""

    async def _archived(self, store: EventStore, location: str) -> list[StoredEvent]:
        written = await write_streams(store)
        head = (await store.log.head()).position
        report = await store.archive(location, through=head)  # type: ignore[attr-defined]
        assert report.archived == STREAMS * (VERSIONS - 2) and report.kept_live == KEPT
        assert report.files >= 1 and report.total == report.archived
        assert await store.count() == KEPT
        return written


class ArchiveReadsContract(_Archived):
    """Every read reads through an archive: streams, the log, subscriptions, frames, and a
    follower while an archive runs."""

    async def test_streams_read_through_the_archive(self, contract_store: EventStore) -> None:
        written = await self._archived(contract_store, memory_location())
        windows = itertools.product(
            range(VERSIONS + 1), [None, *range(1, VERSIONS + 2)], [None, 1, 2, 3], [False, True]
        )
        for after, to, count, backwards in windows:  # every window, each stream
            for sid in {e.aggregate_id for e in written}:
                stream = [
                    e
                    for e in written
                    if e.aggregate_id == sid and after < e.version <= (to or VERSIONS)
                ]
                expected = (stream[::-1] if backwards else stream)[:count]
                read = await contract_store.read_stream(
                    sid, after_version=after, to_version=to, max_count=count, backwards=backwards
                )
                assert same(read, expected), (after, to, count, backwards)
        for sid in {e.aggregate_id for e in written}:
            assert await contract_store.get_current_version(sid) == VERSIONS

    async def test_the_log_reads_through_the_archive(self, contract_store: EventStore) -> None:
        written = await self._archived(contract_store, memory_location())
        assert same(await whole_log(contract_store), written)
        log = contract_store.log
        head = (await log.head()).position
        full = await log.read(0, head, every_position=True)
        assert same(full.events, written) and full.present == frozenset(range(1, head + 1))
        limited = await log.read(0, head, limit=5)
        assert same(limited.events, written[:5]) and limited.through == 5
        only = await log.read(0, head, event_types=["Nothing"], every_position=True)
        assert only.events == [] and only.present == frozenset(range(1, head + 1))
        paged: list[StoredEvent] = []
        reading = CatchUpSubscription(log, start=0, live=False, page_size=2)
        async for event in reading:
            paged.append(event)
        assert same(paged, written)

    async def test_a_subscription_from_the_beginning_reads_the_archive(
        self, contract_store: EventStore
    ) -> None:
        written = await self._archived(contract_store, memory_location())
        seen: list[StoredEvent] = []
        async for event in contract_store.subscribe(start="beginning"):  # type: ignore[attr-defined]
            seen.append(event)
            if len(seen) == len(written):
                break
        assert same(seen, written)

    async def test_a_frame_reads_through_the_archive(self, contract_store: EventStore) -> None:
        from ..workbench import read_frame

        written = await write_streams(contract_store)
        before = await read_frame(contract_store, progress=False)
        head = (await contract_store.log.head()).position
        await contract_store.archive(memory_location(), through=head)  # type: ignore[attr-defined]
        after = await read_frame(contract_store, progress=False)
        assert len(after) == len(written)
        assert after.reset_index(drop=True).equals(before.reset_index(drop=True))
        one = written[0].aggregate_id
        assert list((await read_frame(contract_store, streams=one, progress=False))["version"]) == [
            1,
            2,
            3,
            4,
        ]

    async def test_a_follower_through_a_concurrent_archive(
        self, contract_store: EventStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A follower that reads from the beginning while an archive runs (its files recorded,
        its live copies removed a few at a time, the follower reading between every two
        removals) sees every event once, in order."""
        from .._archive import _job

        monkeypatch.setattr(_job, "CHUNK", 4)
        written = await write_streams(contract_store, streams=10)
        head = (await contract_store.log.head()).position
        seen: list[StoredEvent] = []
        follower = CatchUpSubscription(contract_store.log, start=0, live=False, page_size=3)
        events = aiter(follower)
        for _ in range(3):
            seen.append(await anext(events))

        async def follow_a_little() -> None:
            for _ in range(2):
                event = await anext(events, None)
                if event is not None:
                    seen.append(event)

        async with races.acting_at("archive.removing", follow_a_little, times=100) as point:
            reached = point.reached_count
            await contract_store.archive(memory_location(), through=head)  # type: ignore[attr-defined]
        assert point.reached_count - reached == -(-(len(written) - 2 * 10) // 4)  # every chunk
        seen += [event async for event in events]
        assert same(seen, written)


class ArchiveWritesContract(_Archived):
    """Writing beside an archive: versions stay checked, no stream is created twice, a
    restore puts back exactly what was there and refuses ids appended again."""

    async def test_versions_stay_checked_and_appends_continue(
        self, contract_store: EventStore
    ) -> None:
        written = await self._archived(contract_store, memory_location())
        sid = written[0].aggregate_id
        for expected in range(1, VERSIONS):  # live, archived, and the last archived below
            with pytest.raises(ConcurrencyError):
                await contract_store.append(sid, [contract_event(sid, expected + 1)], expected)
        (appended,) = await contract_store.append(sid, [contract_event(sid, 5)], VERSIONS)
        assert appended.version == VERSIONS + 1
        assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2, 3, 4, 5]

    async def test_a_stream_is_never_created_twice(self, contract_store: EventStore) -> None:
        """An append expecting a new stream to a stream whose middle is archived is refused:
        version 1 stays live, under the unique index."""
        written = await self._archived(contract_store, memory_location())
        for sid in {e.aggregate_id for e in written}:
            for expected in (0, ExpectedVersion.NO_STREAM):
                with pytest.raises(ConcurrencyError):
                    await contract_store.append(sid, [contract_event(sid)], expected)
        assert await contract_store.count() == KEPT
        assert same(await whole_log(contract_store), written)

    async def test_restore_puts_back_what_was_there(self, contract_store: EventStore) -> None:
        location = memory_location()
        written = await self._archived(contract_store, location)
        report = await contract_store.restore_archive()  # type: ignore[attr-defined]
        assert report.restored == len(written) - KEPT
        assert await contract_store.count() == len(written)
        assert same(await whole_log(contract_store), written)
        assert await contract_store.restore_archive() == type(report)(None, 0)  # type: ignore[attr-defined]
        again = await contract_store.archive(location, through=4)  # type: ignore[attr-defined]
        assert again.archived == 1 and same(await whole_log(contract_store), written)

    async def test_a_restore_refuses_ids_appended_again(self, contract_store: EventStore) -> None:
        """An archived event's id appended again (it is no longer in the unique index): a
        restore would store it twice or lose the archived event, so it refuses, naming it,
        and the archive stays the record."""
        written = await self._archived(contract_store, memory_location())
        archived = written[STREAMS]  # the first stream's version 2
        sid = archived.aggregate_id
        again = replace(archived, version=VERSIONS + 1, position=None, recorded_at=None)
        await contract_store.append(sid, [again], ExpectedVersion.ANY)
        log = await whole_log(contract_store)
        for dry_run in (True, False):
            with pytest.raises(ArchiveError, match=str(archived.event_id)):
                await contract_store.restore_archive(dry_run=dry_run)  # type: ignore[attr-defined]
        assert same(await whole_log(contract_store), log)
        assert await contract_store.count() == KEPT + 1

    async def test_a_rerun_and_a_later_range(self, contract_store: EventStore) -> None:
        location = memory_location()
        written = await self._archived(contract_store, location)
        head = (await contract_store.log.head()).position
        rerun = await contract_store.archive(location, through=head)  # type: ignore[attr-defined]
        assert rerun.archived == 0 and rerun.total == len(written) - KEPT
        sid = written[0].aggregate_id
        more = await contract_store.append(sid, [contract_event(sid, 5)], VERSIONS)
        later = await contract_store.archive(location, through=more[0].position)  # type: ignore[attr-defined]
        assert later.archived == 1  # the stream's old last event, no longer its last
        assert same(await whole_log(contract_store), [*written, *more])


class ArchiveJobContract(_Archived):
    """The jobs themselves: by time, dry runs, damaged files, other stores' locations,
    hostile options, two jobs at once."""

    async def test_before_a_time(self, contract_store: EventStore) -> None:
        written = await write_streams(contract_store)
        now = datetime.now(UTC)
        report = await contract_store.archive(memory_location(), before=now)  # type: ignore[attr-defined]
        assert report.archived == len(written) - KEPT
        early = await contract_store.archive(  # type: ignore[attr-defined]
            report.location, before=now - timedelta(days=3650), dry_run=True
        )
        assert early.archived == 0

    async def test_a_dry_run_writes_nothing(
        self, contract_store: EventStore, tmp_path: Path
    ) -> None:
        written = await write_streams(contract_store)
        target = tmp_path / "archive"
        head = (await contract_store.log.head()).position
        report = await contract_store.archive(target, through=head, dry_run=True)  # type: ignore[attr-defined]
        assert report.dry_run and report.archived == len(written) - KEPT and report.files == 0
        assert not target.exists() and await contract_store.count() == len(written)

    async def test_a_local_directory_and_a_damaged_file(
        self, contract_store: EventStore, tmp_path: Path
    ) -> None:
        written = await self._archived(contract_store, str(tmp_path / "archive"))
        parts = sorted((tmp_path / "archive").rglob("part-*.parquet"))
        assert parts and all(p.parent.name.startswith("day=") for p in parts)
        # Readable as a flat dataset by pyarrow as it is.
        import pyarrow.dataset as ds

        dataset = ds.dataset(tmp_path / "archive", format="parquet", partitioning="hive")
        assert dataset.count_rows() == len(written) - KEPT
        parts[0].write_bytes(parts[0].read_bytes()[:-9] + b"corrupted")
        fresh = unique()
        await contract_store.append(fresh, [contract_event(fresh)], 0)  # reads stay live
        # The damaged file is refused by any process that loads it (this one holds it).
        from .._archive._view import _LOADED

        _LOADED.clear()
        with pytest.raises(ArchiveError, match="checksum"):
            await whole_log(contract_store)

    async def test_another_stores_archive_is_refused(self, contract_store: EventStore) -> None:
        written = await write_streams(contract_store)
        theirs = memory_location()
        fs = fsspec.filesystem("memory")
        owner = {"format": 1, "store": "elsewhere.events", "incarnation": "x", "manifest": "m"}
        fs.pipe(f"{theirs}/_eventlab_archive.json", json.dumps(owner).encode())
        foreign = memory_location()
        fs.pipe(f"{foreign}/notes.txt", b"not an archive")
        for location in (theirs, foreign):
            for dry_run in (True, False):  # a dry run refuses what the run would refuse
                with pytest.raises(ArchiveError, match="nothing was written"):
                    await contract_store.archive(location, through=4, dry_run=dry_run)  # type: ignore[attr-defined]
        assert await contract_store.count() == len(written)
        assert fs.ls(theirs.removeprefix("memory://"), False) == [
            f"/{theirs.removeprefix('memory://')}/_eventlab_archive.json"
        ]
        mine = memory_location()
        await contract_store.archive(mine, through=4)  # type: ignore[attr-defined]
        with pytest.raises(ArchiveError, match="archives to"):
            await contract_store.archive(memory_location(), through=4)  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        "options",
        [
            {"through": -1},
            {"through": 2**70},
            {"through": "5"},
            {"through": {"$gt": 0}},
            {"through": True},
            {"through": 1.5},
            {"through": 10**6},
            {"before": datetime(2020, 1, 1)},
            {"before": "2020-01-01"},
            {"before": {"$lt": 1}},
            {"before": datetime.now(UTC) + timedelta(days=1)},
            {"through": 3, "before": datetime(2020, 1, 1, tzinfo=UTC)},
            {},
            {"through": 3, "dry_run": "yes"},
        ],
    )
    async def test_hostile_options_write_nothing(
        self, contract_store: EventStore, options: dict[str, Any]
    ) -> None:
        written = await write_streams(contract_store)
        location = memory_location()
        with pytest.raises(ConfigurationError):
            await contract_store.archive(location, **options)  # type: ignore[attr-defined]
        await self._nothing_written(contract_store, written, location)

    @pytest.mark.parametrize(
        "location",
        [
            {"$ne": None},
            "",
            "   ",
            123,
            None,
            "nope-such-fs://bucket/x",
            "memory://",
            "memory://user:secret@host/x",
            "memory://x/y?z=1",
            "a\x00b",
            "memory://" + "x" * 3000,
        ],
    )
    async def test_hostile_locations_write_nothing(
        self, contract_store: EventStore, location: Any
    ) -> None:
        written = await write_streams(contract_store)
        with pytest.raises(ConfigurationError) as raised:
            await contract_store.archive(location, through=4)  # type: ignore[attr-defined]
        assert "secret" not in str(raised.value)
        await self._nothing_written(contract_store, written, None)

    async def _nothing_written(
        self, store: EventStore, written: list[StoredEvent], location: str | None
    ) -> None:
        assert await store.count() == len(written)
        assert same(await whole_log(store), written)
        if location is not None:
            assert not fsspec.filesystem("memory").exists(location.removeprefix("memory://"))
        with pytest.raises(EventlabError):
            await store.restore_archive(dry_run="no")  # type: ignore[attr-defined]

    async def test_two_jobs_at_once_one_records(self, contract_store: EventStore) -> None:
        """A job that finds another's archive recorded after it wrote its files stops with
        :class:`ConflictError`, having removed nothing; every event is read once."""
        written = await write_streams(contract_store)
        location = memory_location()
        head = (await contract_store.log.head()).position
        other: list[Any] = []

        async def the_other_job_runs_first() -> None:
            other.append(await contract_store.archive(location, through=head))  # type: ignore[attr-defined]

        async with races.acting_at("archive.files_written", the_other_job_runs_first):
            with pytest.raises(ConflictError):
                await contract_store.archive(location, through=head)  # type: ignore[attr-defined]
        assert other[0].archived == len(written) - KEPT
        assert await contract_store.count() == KEPT
        assert same(await whole_log(contract_store), written)


class ArchiveContract(ArchiveReadsContract, ArchiveWritesContract, ArchiveJobContract):
    """``archive`` moves events into Parquet files that every read reads through; each
    stream's first and last events stay live; ``restore_archive`` puts them back as they were."""
