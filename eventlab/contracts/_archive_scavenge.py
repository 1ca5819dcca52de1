"""The archive and the stream lifecycle together (docs/archive.md, docs/lifecycle.md): a
scavenge removes hidden events that live in the archive as it removes live ones, by a
tombstone at their position in the live collection, which every read through the archive lets
win over the archive's copy; a restore puts back only what no scavenge removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .._core import races
from .._core.domain import utc_now
from .._core.lifecycle import STREAM_DELETED
from .._core.records import StoredEvent
from ..ports import EventStore
from ._archive import memory_location, same, whole_log
from ._lifecycle import lifecycle_of, read_all
from ._support import NeedsAStore, contract_event, unique

VERSIONS = 10
LATER = timedelta(hours=2)
"""How far ahead of the writes a scavenge's clock is set, so the aged stream has expired."""


@dataclass
class Streams:
    """Five interleaved streams, each given a different rule, and what the rules hide."""

    truncated: str = field(default_factory=lambda: unique("truncated"))
    capped: str = field(default_factory=lambda: unique("capped"))
    deleted: str = field(default_factory=lambda: unique("deleted"))
    aged: str = field(default_factory=lambda: unique("aged"))
    untouched: str = field(default_factory=lambda: unique("untouched"))
    written: list[StoredEvent] = field(default_factory=list)
    location: str = field(default_factory=memory_location)

    @property
    def ids(self) -> list[str]:
        return [self.truncated, self.capped, self.deleted, self.aged, self.untouched]

    def hidden(self, event: StoredEvent) -> bool:
        """Whether the rules set by :meth:`hide` hide ``event`` (the deletion's marker too)."""
        if event.aggregate_id in (self.deleted, self.aged):
            return True
        return event.aggregate_id in (self.truncated, self.capped) and event.version < VERSIONS - 1

    def removes(self, event: StoredEvent) -> bool:
        """Whether a scavenge removes ``event``: what the rules hide but the deletion's marker
        (a scavenge keeps every marker: docs/lifecycle.md)."""
        return self.hidden(event) and event.event_type != STREAM_DELETED

    def removed(self) -> dict[str, int]:
        """What a scavenge removes from each stream."""
        return {
            self.truncated: VERSIONS - 2,
            self.capped: VERSIONS - 2,
            self.deleted: VERSIONS,
            self.aged: VERSIONS,
        }

    async def write(self, store: EventStore) -> None:
        for version in range(1, VERSIONS + 1):
            for sid in self.ids:
                self.written += await store.append(sid, [contract_event(sid, version)], version - 1)

    async def hide(self, store: EventStore) -> None:
        """Each rule: a truncation, a retention by count, a soft delete, one by age."""
        lifecycle = lifecycle_of(store)
        await lifecycle.truncate(self.truncated, VERSIONS - 1)
        await lifecycle.set_retention(self.capped, max_count=2)
        self.written.append(await lifecycle.delete(self.deleted, VERSIONS))
        await lifecycle.set_retention(self.aged, max_age=timedelta(hours=1))


async def scavenge(store: EventStore) -> Any:
    return await lifecycle_of(store).scavenge(now=utc_now() + LATER)


class ArchiveScavengeContract(NeedsAStore):
    """A scavenge removes hidden archived events from every read; a restore keeps it so."""

    async def _archived_and_hidden(self, store: EventStore) -> Streams:
        """The streams written, all but each one's first and last archived, then hidden."""
        streams = Streams()
        await streams.write(store)
        head = (await store.log.head()).position
        report = await store.archive(streams.location, through=head)  # type: ignore[attr-defined]
        assert report.archived == len(streams.ids) * (VERSIONS - 2)
        await streams.hide(store)
        return streams

    async def _reads_without_the_hidden(self, store: EventStore, streams: Streams) -> None:
        """Every read gives what remains (the log: with the deletion's marker), and the
        removed positions as reported gaps."""
        remaining = [e for e in streams.written if not streams.hidden(e)]
        in_log = [e for e in streams.written if not streams.removes(e)]
        gone = sorted(e.position or 0 for e in streams.written if streams.removes(e))
        head = (await store.log.head()).position
        assert same(await whole_log(store), in_log)
        every = await store.log.read(0, head, every_position=True)
        assert same(every.events, in_log) and sorted(every.abandoned) == gone
        assert every.present == frozenset(range(1, head + 1))
        typed = await store.log.read(0, head, event_types=["ContractNoted"])
        assert same(typed.events, remaining)  # a filtered read, which reports no gap
        limited = await store.log.read(0, head, limit=12)
        assert same(limited.events, [e for e in in_log if (e.position or 0) <= 12])
        follower = read_all(store)
        assert same([e async for e in follower], in_log) and list(follower.gaps) == gone
        for sid in streams.ids:
            expected = [e for e in remaining if e.aggregate_id == sid]
            assert same(await store.read_stream(sid), expected), sid
            backwards = await store.read_stream(sid, backwards=True, max_count=3)
            assert same(backwards, expected[::-1][:3]), sid
        seen: list[StoredEvent] = []
        async for event in store.subscribe(start="beginning"):  # type: ignore[attr-defined]
            seen.append(event)
            if len(seen) == len(in_log):
                break
        assert same(seen, in_log)
        await self._frames_without_the_hidden(store, streams, in_log)

    async def _frames_without_the_hidden(
        self, store: EventStore, streams: Streams, remaining: list[StoredEvent]
    ) -> None:
        from ..workbench import read_frame

        frame = await read_frame(store, progress=False)
        rows = sorted(zip(frame["aggregate_id"], frame["version"], strict=True))
        assert rows == sorted((e.aggregate_id, e.version) for e in remaining)
        one = await read_frame(store, streams=streams.truncated, progress=False)
        assert list(one["version"]) == [VERSIONS - 1, VERSIONS]
        assert list(one["payload.n"]) == [VERSIONS - 1, VERSIONS]

    async def test_a_scavenge_removes_archived_events_from_every_read(
        self, contract_store: EventStore
    ) -> None:
        streams = await self._archived_and_hidden(contract_store)
        dry = await lifecycle_of(contract_store).scavenge(dry_run=True, now=utc_now() + LATER)
        assert dict(dry.by_stream) == streams.removed()
        assert same(await whole_log(contract_store), streams.written)  # a dry run writes nothing
        report = await scavenge(contract_store)
        assert dict(report.by_stream) == streams.removed() and report.removed == sum(
            streams.removed().values()
        )
        await self._reads_without_the_hidden(contract_store, streams)
        assert (await scavenge(contract_store)).removed == 0
        # Lifting the retention shows again only what no scavenge removed: none of it.
        await lifecycle_of(contract_store).set_retention(streams.capped, max_count=None)
        versions = [e.version for e in await contract_store.read_stream(streams.capped)]
        assert versions == [VERSIONS - 1, VERSIONS]
        await self._reads_without_the_hidden(contract_store, streams)

    async def test_a_restore_after_a_scavenge_puts_back_only_what_remains(
        self, contract_store: EventStore
    ) -> None:
        streams = await self._archived_and_hidden(contract_store)
        await scavenge(contract_store)
        log = await whole_log(contract_store)
        gaps = (await contract_store.log.read(0, 10**6, every_position=True)).abandoned
        archived_and_removed = sum(
            1
            for e in streams.written
            if streams.hidden(e) and 1 < e.version < VERSIONS and e.event_type == "ContractNoted"
        )
        archived = len(streams.ids) * (VERSIONS - 2)
        dry = await contract_store.restore_archive(dry_run=True)  # type: ignore[attr-defined]
        assert (dry.restored, dry.scavenged) == (
            archived - archived_and_removed,
            archived_and_removed,
        )
        report = await contract_store.restore_archive()  # type: ignore[attr-defined]
        assert (report.restored, report.scavenged) == (dry.restored, dry.scavenged)
        in_log = [e for e in streams.written if not streams.removes(e)]
        assert await contract_store.count() == len(in_log)  # live: every event not removed
        assert same(await whole_log(contract_store), log)
        assert (await contract_store.log.read(0, 10**6, every_position=True)).abandoned == gaps
        await self._reads_without_the_hidden(contract_store, streams)
        assert (await scavenge(contract_store)).removed == 0
        assert (await contract_store.restore_archive()).restored == 0  # type: ignore[attr-defined]

    async def test_a_later_archive_leaves_the_tombstones_live(
        self, contract_store: EventStore
    ) -> None:
        streams = await self._archived_and_hidden(contract_store)
        await scavenge(contract_store)
        sid = streams.untouched
        streams.written += await contract_store.append(
            sid, [contract_event(sid, VERSIONS + n) for n in (1, 2)], VERSIONS
        )
        head = (await contract_store.log.head()).position
        report = await contract_store.archive(streams.location, through=head)  # type: ignore[attr-defined]
        # The untouched stream's old last and the one after it (its new last stays live): no
        # tombstone moves, and the others stay where they are.
        assert report.archived == 2
        # Three streams' lasts (the deletion's marker one of them), the untouched one's first and
        # last.
        assert report.kept_live == 5
        await self._reads_without_the_hidden(contract_store, streams)

    async def test_a_scavenge_while_an_archive_moves_the_events(
        self, contract_store: EventStore
    ) -> None:
        """A scavenge that runs after an archive wrote its files (the events in both places)
        replaces the live copies by tombstones; the archive removes the live events but never
        a tombstone, so the archive's copies stay shadowed."""
        streams = Streams()
        await streams.write(contract_store)
        await streams.hide(contract_store)
        head = (await contract_store.log.head()).position
        reports: list[Any] = []

        async def scavenge_now() -> None:
            reports.append(await scavenge(contract_store))

        async with races.acting_at("archive.files_written", scavenge_now):
            archived = await contract_store.archive(memory_location(), through=head)  # type: ignore[attr-defined]
        # Selected before the scavenge; the deleted stream's last is its marker.
        assert archived.archived == len(streams.ids) * (VERSIONS - 2) + 1
        assert dict(reports[0].by_stream) == streams.removed()
        await self._reads_without_the_hidden(contract_store, streams)
        assert (await scavenge(contract_store)).removed == 0

    async def test_a_scavenge_while_a_restore_puts_events_back(
        self, contract_store: EventStore
    ) -> None:
        """A scavenge that runs while a restore is under way removes archived events that are
        not back yet by their tombstones; the restore skips those positions."""
        streams = await self._archived_and_hidden(contract_store)
        reports: list[Any] = []

        async def scavenge_now() -> None:
            reports.append(await scavenge(contract_store))

        async with races.acting_at("archive.restoring", scavenge_now):
            await contract_store.restore_archive()  # type: ignore[attr-defined]
        assert dict(reports[0].by_stream) == streams.removed()
        assert await contract_store.log.archive_reader.markers.get() is None  # type: ignore[attr-defined]
        await self._reads_without_the_hidden(contract_store, streams)
        assert (await scavenge(contract_store)).removed == 0
