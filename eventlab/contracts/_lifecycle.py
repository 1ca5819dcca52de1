"""Stream lifecycle's contracts (docs/lifecycle.md): deletion, soft and permanent, raced
against appends; truncation and retention as reads see them; the scavenge that removes what
they allow, leaving reported gaps for followers; snapshots built from removed events deleted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from .._core import races
from .._core.checks import MAX_ID_BYTES
from .._core.domain import utc_now
from .._core.errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    InvalidEventError,
    InvalidIdError,
    StreamDeletedError,
)
from .._core.lifecycle import SCAVENGED, STREAM_DELETED, STREAM_DELETED_PERMANENTLY
from .._core.records import ExpectedVersion
from ..ports import EventStore, Snapshot, StreamLifecycle
from ._support import NeedsAStore, contract_event, unique


def read_all(store: EventStore, after: int = 0) -> Any:
    """The store's ``read_all`` (every store eventlab ships has it; the port does not)."""
    return store.read_all(after)  # type: ignore[attr-defined]


def lifecycle_of(store: EventStore) -> StreamLifecycle:
    found: StreamLifecycle = store.lifecycle()  # type: ignore[attr-defined]
    return found


async def stream_of(store: EventStore, count: int) -> str:
    sid = unique("lifecycle")
    await store.append(sid, [contract_event(sid, n) for n in range(1, count + 1)], 0)
    return sid


async def positions_of(store: EventStore, sid: str) -> list[int]:
    """Every position the stream's events took (read through the log, before any removal)."""
    return [e.position or 0 async for e in read_all(store) if e.aggregate_id == sid]


class DeletionContract(NeedsAStore):
    """A delete is an append of a marker at an expected version: soft or permanent."""

    async def test_a_soft_deleted_stream_reads_empty_and_continues_its_versions(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 3)
        marker = await lifecycle_of(contract_store).delete(sid, 3, reason="closed")
        assert (marker.version, marker.event_type) == (4, STREAM_DELETED)
        assert marker.aggregate_type == "Contract"  # followers of the type see it
        assert marker.payload == {"permanent": False, "reason": "closed"}
        assert await contract_store.read_stream(sid) == []
        assert await contract_store.get_current_version(sid) == 4
        with pytest.raises(ConcurrencyError):
            await contract_store.append(sid, [contract_event(sid)], 0)
        (again,) = await contract_store.append(sid, [contract_event(sid)], 4)
        assert again.version == 5
        assert [e.version for e in await contract_store.read_stream(sid)] == [5]
        logged = [e async for e in read_all(contract_store) if e.aggregate_id == sid]
        assert [e.event_type for e in logged].count(STREAM_DELETED) == 1
        # A follower filtered by the stream's type, or by the lifecycle types, is told.
        head = (await contract_store.log.head()).position
        for filters in ({"aggregate_types": ["Contract"]}, {"event_types": [STREAM_DELETED]}):
            found = await contract_store.log.read(0, head, **filters)  # type: ignore[arg-type]
            assert marker.event_id in {e.event_id for e in found.events}, filters
        metadata = await lifecycle_of(contract_store).metadata(sid)
        assert (metadata.deleted, metadata.deleted_version, metadata.truncate_before) == (
            "soft",
            4,
            5,
        )

    async def test_a_permanently_deleted_stream_refuses_every_read_and_append(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 3)
        lifecycle = lifecycle_of(contract_store)
        marker = await lifecycle.delete(sid, 3, permanent=True)
        assert (marker.version, marker.event_type) == (4, STREAM_DELETED_PERMANENTLY)
        count = await contract_store.count()
        stale = (4, 3, 2, 1, 0, ExpectedVersion.NO_STREAM)  # at, next to, below the marker
        for expected in (*stale, ExpectedVersion.ANY, ExpectedVersion.STREAM_EXISTS):
            with pytest.raises(StreamDeletedError) as raised:
                await contract_store.append(sid, [contract_event(sid)], expected)
            assert raised.value.aggregate_id == sid
        with pytest.raises(StreamDeletedError):
            await contract_store.read_stream(sid)
        for operation in (
            lifecycle.delete(sid, 4),
            lifecycle.truncate(sid, 2),
            lifecycle.set_retention(sid, max_count=1),
        ):
            with pytest.raises(StreamDeletedError):
                await operation
        assert await contract_store.count() == count
        assert await contract_store.get_current_version(sid) == 4

    async def test_a_delete_at_a_stale_version_is_a_conflict_and_writes_nothing(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 2)
        count = await contract_store.count()
        for stale in (0, 1, 5):
            with pytest.raises(ConcurrencyError):
                await lifecycle_of(contract_store).delete(sid, stale, permanent=True)
        assert await contract_store.count() == count
        assert len(await contract_store.read_stream(sid)) == 2
        assert (await lifecycle_of(contract_store).metadata(sid)).deleted is None

    async def test_a_delete_racing_an_append_at_the_same_version_one_wins(
        self, contract_store: EventStore
    ) -> None:
        for permanent in (False, True, False, True):
            sid = await stream_of(contract_store, 1)
            results = await asyncio.gather(
                lifecycle_of(contract_store).delete(sid, 1, permanent=permanent),
                contract_store.append(sid, [contract_event(sid, 2)], 1),
                return_exceptions=True,
            )
            lost = [r for r in results if isinstance(r, BaseException)]
            assert len(lost) == 1, results
            if isinstance(results[1], BaseException) and permanent:
                # The losing append met the permanent marker: the stream's deletion itself.
                assert isinstance(lost[0], StreamDeletedError), results
            else:
                assert type(lost[0]) is ConcurrencyError, results
            assert await contract_store.get_current_version(sid) == 2
            deleted = (await lifecycle_of(contract_store).metadata(sid)).deleted
            if deleted is None:  # the append won: the stream is whole
                assert [e.version for e in await contract_store.read_stream(sid)] == [1, 2]
            elif deleted == "soft":
                assert await contract_store.read_stream(sid) == []
            else:
                with pytest.raises(StreamDeletedError):
                    await contract_store.read_stream(sid)

    @pytest.mark.parametrize("first", ["delete", "append"])
    async def test_a_forced_interleaving_of_delete_and_append(
        self, contract_store: EventStore, first: str
    ) -> None:
        """The loser has taken its positions when the winner runs to its commit: the unique
        ``(aggregate_id, version)`` key refuses the loser, which stores nothing."""
        if contract_store.position_strategy != "preallocated":  # type: ignore[attr-defined]
            pytest.skip("positions taken in the transaction: the other writer waits on them")
        sid = await stream_of(contract_store, 1)
        lifecycle = lifecycle_of(contract_store)

        async def winner() -> None:
            if first == "delete":
                await lifecycle.delete(sid, 1, permanent=True)
            else:
                await contract_store.append(sid, [contract_event(sid, 2)], 1)

        loses = StreamDeletedError if first == "delete" else ConcurrencyError
        async with races.acting_at("append.positions_taken", winner) as race:
            with pytest.raises(loses):
                if first == "delete":
                    await contract_store.append(sid, [contract_event(sid, 2)], 1)
                else:
                    await lifecycle.delete(sid, 1, permanent=True)
            assert race.reached_count >= 1
        assert await contract_store.get_current_version(sid) == 2
        deleted = (await lifecycle.metadata(sid)).deleted
        assert deleted == ("permanent" if first == "delete" else None)

    async def test_deleting_deletes_the_snapshot(self, contract_store: EventStore) -> None:
        sid = await stream_of(contract_store, 2)
        snapshots = contract_store.backend.snapshots()
        await snapshots.save(Snapshot(sid, "Contract", 2, 1, {"n": 2}))
        await lifecycle_of(contract_store).delete(sid, 2)
        assert await snapshots.get(sid) is None


class TruncationContract(NeedsAStore):
    """Truncation and retention: what reads return at once, what a scavenge removes."""

    async def test_reads_start_at_the_truncation(self, contract_store: EventStore) -> None:
        sid = await stream_of(contract_store, 5)
        metadata = await lifecycle_of(contract_store).truncate(sid, 4)
        assert metadata.truncate_before == 4
        assert [e.version for e in await contract_store.read_stream(sid)] == [4, 5]
        backwards = await contract_store.read_stream(sid, backwards=True, max_count=5)
        assert [e.version for e in backwards] == [5, 4]
        assert await contract_store.get_current_version(sid) == 5
        # Only forward: an earlier truncation changes nothing.
        assert (await lifecycle_of(contract_store).truncate(sid, 2)).truncate_before == 4
        (sixth,) = await contract_store.append(sid, [contract_event(sid)], 5)
        assert sixth.version == 6

    async def test_a_truncation_beyond_the_next_version_is_refused(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 2)
        with pytest.raises(Exception, match="beyond"):
            await lifecycle_of(contract_store).truncate(sid, 4)
        assert (await lifecycle_of(contract_store).metadata(sid)).truncate_before == 0

    async def test_max_count_and_max_age_hide_at_once(self, contract_store: EventStore) -> None:
        sid = await stream_of(contract_store, 5)
        lifecycle = lifecycle_of(contract_store)
        await lifecycle.set_retention(sid, max_count=2)
        assert [e.version for e in await contract_store.read_stream(sid)] == [4, 5]
        (last,) = await contract_store.read_stream(sid, backwards=True, max_count=1)
        age = timedelta(milliseconds=1)
        await lifecycle.set_retention(sid, max_age=age)
        assert last.recorded_at is not None
        while utc_now() - age <= last.recorded_at:  # the clock, not a sleep, decides
            await asyncio.sleep(0.001)
        assert await contract_store.read_stream(sid) == []  # all recorded before now - age
        lifted = await lifecycle.set_retention(sid)
        assert (lifted.max_count, lifted.max_age) == (None, None)
        assert len(await contract_store.read_stream(sid)) == 5

    async def test_truncating_deletes_an_older_snapshot_only(
        self, contract_store: EventStore
    ) -> None:
        snapshots = contract_store.backend.snapshots()
        older, newer = await stream_of(contract_store, 5), await stream_of(contract_store, 5)
        await snapshots.save(Snapshot(older, "Contract", 2, 1, {}))
        await snapshots.save(Snapshot(newer, "Contract", 3, 1, {}))
        await lifecycle_of(contract_store).truncate(older, 4)
        await lifecycle_of(contract_store).truncate(newer, 4)
        assert await snapshots.get(older) is None
        assert await snapshots.get(newer) is not None


class LifecycleAggregatesContract(NeedsAStore):
    """Aggregates on streams whose reads start above version 1 load at the stream's version
    and save again; a snapshot below the truncation is never combined with what follows it."""

    async def _order(self, store: EventStore, aggregates: Any) -> Any:
        from ..samples.orders import Address, Order

        order = Order(unique("order"))
        order.place(uuid.uuid4(), "EUR", Address(street="Main 1", city="Oslo", country="NO"))
        for n in range(5):
            order.add_line(f"sku-{n}", 1, Decimal("2.50"))
        await aggregates.save(order)
        assert await store.get_current_version(order.id) == 6
        return order

    async def test_an_aggregate_on_a_truncated_or_capped_stream_saves_again(
        self, contract_store: EventStore
    ) -> None:
        from .._aggregates.store import AggregateStore
        from ..samples.orders import LineAdded, Order

        aggregates = AggregateStore(contract_store)
        lifecycle = lifecycle_of(contract_store)
        truncated = await self._order(contract_store, aggregates)
        capped = await self._order(contract_store, aggregates)
        await lifecycle.truncate(truncated.id, 4)
        await lifecycle.set_retention(capped.id, max_count=2)
        for order, applied in ((truncated, 3), (capped, 2)):
            loaded = await aggregates.load(Order, order.id)
            assert (loaded.version, loaded.lines) == (6, applied)
            loaded.record(LineAdded(sku="more", quantity=1, unit_price=Decimal("1")))
            await aggregates.save(loaded)
            assert await contract_store.get_current_version(order.id) == 7

    async def test_a_stream_read_as_empty_is_not_found_and_continues_by_append(
        self, contract_store: EventStore
    ) -> None:
        from .._aggregates.store import AggregateStore
        from ..samples.orders import Address, Order

        aggregates = AggregateStore(contract_store)
        order = await self._order(contract_store, aggregates)
        await lifecycle_of(contract_store).delete(order.id, 6)  # soft: reads return nothing
        with pytest.raises(AggregateNotFoundError):
            await aggregates.load(Order, order.id)
        again = Order(order.id)
        again.place(uuid.uuid4(), "EUR", Address(street="Main 2", city="Oslo", country="NO"))
        with pytest.raises(ConcurrencyError):
            await aggregates.save(again)  # a create: the stream exists
        current = await contract_store.get_current_version(order.id)
        (next_one,) = await contract_store.append(order.id, [contract_event(order.id)], current)
        assert next_one.version == 8 and len(await contract_store.read_stream(order.id)) == 1

    async def test_a_snapshot_below_the_truncation_is_ignored(
        self, contract_store: EventStore
    ) -> None:
        """A snapshot written after a truncation above it (a save's snapshot that lands late):
        the load replays what reads return instead of joining the two across hidden versions."""
        from .._aggregates.store import AggregateStore, take_snapshot
        from ..samples.orders import Order

        snapshots = contract_store.backend.snapshots()
        aggregates = AggregateStore(contract_store, snapshots=snapshots)
        order = await self._order(contract_store, AggregateStore(contract_store))
        placed = await contract_store.read_domain_events(order.id, to_version=2, unknown="raise")
        early = Order.rebuild(order.id, placed)  # type: ignore[arg-type]
        await lifecycle_of(contract_store).truncate(order.id, 5)
        await snapshots.save(take_snapshot(early))  # at version 2, below the truncation
        loaded = await aggregates.load(Order, order.id)
        replayed = await AggregateStore(contract_store).load(Order, order.id)
        assert loaded.state() == replayed.state() and loaded.version == 6
        assert loaded.lines == 2  # versions 5 and 6: nothing of 3 and 4 joined on


class ScavengeContract(NeedsAStore):
    """A scavenge removes what policy allows, idempotently, leaving reported gaps."""

    async def test_a_scavenge_leaves_tombstones_followers_report(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 6)
        positions = await positions_of(contract_store, sid)
        lifecycle = lifecycle_of(contract_store)
        await lifecycle.truncate(sid, 5)
        count = await contract_store.count()
        dry = await lifecycle.scavenge(dry_run=True)
        assert dry.dry_run and dry.by_stream[sid] == 4
        assert await contract_store.count() == count  # a dry run writes nothing
        report = await lifecycle.scavenge()
        assert report.by_stream[sid] == 4 and not report.dry_run
        assert await contract_store.count() == count - 4
        assert sid not in (await lifecycle.scavenge()).by_stream  # idempotent
        found = await contract_store.log.read(positions[0] - 1, positions[-1], every_position=True)
        assert set(found.abandoned) == set(positions[:4])
        assert found.present is not None and set(positions) <= found.present
        assert [e.version for e in found.events if e.aggregate_id == sid] == [5, 6]
        gaps: list[int] = []
        follower = read_all(contract_store, positions[0] - 1)
        seen = [e.position async for e in follower if e.aggregate_id == sid]
        gaps = [p for p in follower.gaps if p in positions]
        assert seen == positions[4:] and gaps == positions[:4]
        assert [e.version for e in await contract_store.read_stream(sid)] == [5, 6]
        (seventh,) = await contract_store.append(sid, [contract_event(sid)], 6)
        assert seventh.version == 7
        with pytest.raises(ConcurrencyError):  # a removed version is never taken again
            await contract_store.append(sid, [contract_event(sid)], 0)

    async def test_a_scavenge_keeps_every_deletion_marker(self, contract_store: EventStore) -> None:
        """A projection that passes a deleted stream only after its scavenge is still told."""
        lifecycle = lifecycle_of(contract_store)
        soft, permanent = await stream_of(contract_store, 3), await stream_of(contract_store, 3)
        await lifecycle.delete(soft, 3)
        await lifecycle.delete(permanent, 3, permanent=True)
        report = await lifecycle.scavenge()
        assert (report.by_stream[soft], report.by_stream[permanent]) == (3, 3)
        left = [
            (e.aggregate_id, e.version, e.event_type)
            async for e in read_all(contract_store)
            if e.aggregate_id in (soft, permanent)
        ]
        assert left == [(soft, 4, STREAM_DELETED), (permanent, 4, STREAM_DELETED_PERMANENTLY)]

    async def test_a_count_applies_to_what_the_rules_keep(self, contract_store: EventStore) -> None:
        """After a scavenge and a lifted retention, and under an age rule, ``max_count``
        counts the events a read returns, never the tombstones or expired ones before them."""
        lifecycle = lifecycle_of(contract_store)
        sid = await stream_of(contract_store, 10)
        await lifecycle.set_retention(sid, max_count=2)
        assert (await lifecycle.scavenge()).by_stream[sid] == 8
        await lifecycle.set_retention(sid)
        read = contract_store.read_stream
        assert [e.version for e in await read(sid, max_count=3)] == [9, 10]
        assert [e.version for e in await read(sid, max_count=1)] == [9]
        assert [e.version for e in await read(sid, backwards=True, max_count=1)] == [10]
        assert [e.version for e in await read(sid, after_version=3, max_count=1)] == [9]

    async def test_retention_and_permanent_deletion_are_scavenged(
        self, contract_store: EventStore
    ) -> None:
        lifecycle = lifecycle_of(contract_store)
        capped, aged, gone = [await stream_of(contract_store, 4) for _ in range(3)]
        await lifecycle.set_retention(capped, max_count=1)
        await lifecycle.set_retention(aged, max_age=timedelta(hours=1))
        await lifecycle.delete(gone, 4, permanent=True)
        later = utc_now() + timedelta(hours=2)
        report = await lifecycle.scavenge(now=later)
        assert {s: report.by_stream.get(s) for s in (capped, aged, gone)} == {
            capped: 3,
            aged: 4,
            gone: 4,
        }
        assert [e.version for e in await contract_store.read_stream(capped)] == [4]
        with pytest.raises(StreamDeletedError):
            await contract_store.append(gone, [contract_event(gone)], ExpectedVersion.ANY)
        kinds = [e.event_type async for e in read_all(contract_store) if e.aggregate_id == gone]
        assert kinds == [STREAM_DELETED_PERMANENTLY]  # the marker stays

    async def test_a_scavenge_deletes_snapshots_built_from_removed_events(
        self, contract_store: EventStore
    ) -> None:
        sid = await stream_of(contract_store, 5)
        snapshots = contract_store.backend.snapshots()
        await lifecycle_of(contract_store).set_retention(sid, max_count=2)
        await snapshots.save(Snapshot(sid, "Contract", 2, 1, {}))
        dry = await lifecycle_of(contract_store).scavenge(dry_run=True)
        assert dry.snapshots_deleted >= 1 and await snapshots.get(sid) is not None
        await lifecycle_of(contract_store).scavenge()
        assert await snapshots.get(sid) is None

    async def test_a_tombstone_records_why(self, contract_store: EventStore) -> None:
        sid = await stream_of(contract_store, 2)
        positions = await positions_of(contract_store, sid)
        await lifecycle_of(contract_store).truncate(sid, 2)
        await lifecycle_of(contract_store).scavenge()
        found = await contract_store.log.read(positions[0] - 1, positions[0])
        assert found.abandoned == (positions[0],) and found.events == []
        assert SCAVENGED == "scavenged"


HOSTILE_IDS: list[Any] = [{"$ne": None}, {"$gt": ""}, ["a"], None, 7, b"id", "", "dcb:1"]
HOSTILE_VERSIONS: list[Any] = [-1, 2**63, 1.5, "3", True, None, {"$gt": 0}]
UNSTORABLE_IDS: dict[str, tuple[str, str]] = {
    # name: (id, what the refusal says)
    "lone surrogate": ("x\ud800", "not UTF-8 text"),
    "undecodable byte": ("stream-\udcff", "not UTF-8 text"),  # how os.fsdecode keeps 0xff
    "1,025 bytes": ("y" * (MAX_ID_BYTES + 1), "longer than 1,024 UTF-8 bytes"),
    "1,026 bytes in 513 chars": ("\u00e9" * 513, "longer than 1,024 UTF-8 bytes"),
    "10 MB": ("z" * (10 * 2**20), "longer than 1,024 UTF-8 bytes"),
    "17 MB": ("z" * (17 * 2**20), "longer than 1,024 UTF-8 bytes"),
}


class LifecycleHostileContract(NeedsAStore):
    """Every lifecycle entry point refuses what is not a plain value, and writes nothing."""

    async def _unchanged(self, store: EventStore, sid: str, count: int) -> None:
        assert await store.count() == count
        assert (await lifecycle_of(store).metadata(sid)).has_policy is False
        assert len(await store.read_stream(sid)) == 2

    @pytest.mark.parametrize("bad", HOSTILE_IDS)
    async def test_ids_that_are_not_plain_names(self, contract_store: EventStore, bad: Any) -> None:
        sid = await stream_of(contract_store, 2)
        lifecycle, count = lifecycle_of(contract_store), await contract_store.count()
        for call in (
            lambda: lifecycle.delete(bad, 2),
            lambda: lifecycle.truncate(bad, 2),
            lambda: lifecycle.set_retention(bad, max_count=1),
            lambda: lifecycle.metadata(bad),
        ):
            with pytest.raises(Exception, match="aggregate_id") as raised:
                await call()
            assert type(raised.value).__name__ == "InvalidIdError"
        await self._unchanged(contract_store, sid, count)

    @pytest.mark.parametrize("name", list(UNSTORABLE_IDS))
    async def test_unstorable_ids_are_refused_by_appends_reads_and_the_lifecycle_alike(
        self, contract_store: EventStore, name: str
    ) -> None:
        """A stream id that is not UTF-8 text, or longer than 1,024 UTF-8 bytes, is refused
        by every entry point that takes one, on every backend, with the same typed error
        naming the problem; nothing is written (no event, no metadata)."""
        bad, says = UNSTORABLE_IDS[name]
        sid = await stream_of(contract_store, 2)
        lifecycle, count = lifecycle_of(contract_store), await contract_store.count()
        with_policy = (await lifecycle.scavenge(dry_run=True)).streams
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: contract_store.append(bad, [contract_event(bad)], 0),
            lambda: contract_store.append(bad, [contract_event(bad)], ExpectedVersion.ANY),
            lambda: contract_store.read_stream(bad),
            lambda: contract_store.get_current_version(bad),
            lambda: contract_store.backend.snapshots().get(bad),
            lambda: lifecycle.delete(bad, 0),
            lambda: lifecycle.delete(bad, ExpectedVersion.ANY, permanent=True),
            lambda: lifecycle.truncate(bad, 1),
            lambda: lifecycle.set_retention(bad, max_count=1),
            lambda: lifecycle.metadata(bad),
        ]
        for call in calls:
            with pytest.raises(InvalidIdError, match=f"aggregate_id .*{says}") as raised:
                await call()
            assert len(str(raised.value)) < 200  # the id is shortened, never echoed whole
        assert (await lifecycle.scavenge(dry_run=True)).streams == with_policy
        await self._unchanged(contract_store, sid, count)

    async def test_an_id_of_1024_utf8_bytes_has_a_lifecycle_like_any(
        self, contract_store: EventStore
    ) -> None:
        """The bound is inclusive and counts bytes: 512 two-byte characters make a stream."""
        tag = unique("x")  # 14 ASCII characters: the rest is two-byte ones
        sid = tag + "\u00e9" * ((MAX_ID_BYTES - len(tag)) // 2)
        assert len(sid.encode("utf-8")) == MAX_ID_BYTES
        await contract_store.append(sid, [contract_event(sid, n) for n in (1, 2, 3)], 0)
        lifecycle = lifecycle_of(contract_store)
        assert (await lifecycle.truncate(sid, 2)).truncate_before == 2
        assert (await lifecycle.set_retention(sid, max_count=1)).max_count == 1
        assert [e.version for e in await contract_store.read_stream(sid)] == [3]
        assert (await lifecycle.delete(sid, 3, permanent=True)).version == 4
        with pytest.raises(StreamDeletedError):
            await contract_store.read_stream(sid)

    @pytest.mark.parametrize("bad", HOSTILE_VERSIONS)
    async def test_versions_and_counts_that_are_not_plain_ints(
        self, contract_store: EventStore, bad: Any
    ) -> None:
        sid = await stream_of(contract_store, 2)
        lifecycle, count = lifecycle_of(contract_store), await contract_store.count()
        calls: list[tuple[Callable[[], Awaitable[Any]], str]] = [
            (lambda: lifecycle.truncate(sid, bad), "before_version"),
            (lambda: lifecycle.scavenge(batch_size=bad), "batch_size"),
        ]
        if bad is not None:  # None lifts a retention rule, and is no expected version
            calls.append((lambda: lifecycle.set_retention(sid, max_count=bad), "max_count"))
            calls.append((lambda: lifecycle.delete(sid, bad), "expected_version"))
        for call, name in calls:
            with pytest.raises(Exception, match=name) as raised:
                await call()
            assert type(raised.value).__name__ in ("ConfigurationError", "InvalidIdError")
        await self._unchanged(contract_store, sid, count)

    @pytest.mark.parametrize("bad", [-5, 0, float("nan"), float("inf"), "1h", True, [1]])
    async def test_ages_and_flags_of_the_wrong_kind(
        self, contract_store: EventStore, bad: Any
    ) -> None:
        sid = await stream_of(contract_store, 2)
        lifecycle, count = lifecycle_of(contract_store), await contract_store.count()
        with pytest.raises(Exception, match="max_age"):
            await lifecycle.set_retention(sid, max_age=bad)
        if not isinstance(bad, bool):
            with pytest.raises(Exception, match="permanent"):
                await lifecycle.delete(sid, 2, permanent=bad)
            with pytest.raises(Exception, match="dry_run"):
                await lifecycle.scavenge(dry_run=bad)
        with pytest.raises(Exception, match="reason"):
            await lifecycle.delete(sid, 2, reason=["x"])  # type: ignore[arg-type]
        with pytest.raises(Exception, match="reason"):
            await lifecycle.delete(sid, 2, reason="x" * 1001)
        for now in (bad, datetime(2026, 1, 1)):  # not a datetime; naive
            with pytest.raises(Exception, match="now"):
                await lifecycle.scavenge(now=now)
        with pytest.raises(Exception, match="on_batch"):
            await lifecycle.scavenge(on_batch=bad)
        with pytest.raises(Exception, match="snapshots"):
            contract_store.lifecycle(snapshots=bad)  # type: ignore[attr-defined]
        await self._unchanged(contract_store, sid, count)

    @pytest.mark.parametrize("name", ["$where", "a.b", "$gt.x", "stream\u00e9.$"])
    async def test_names_with_dollars_and_dots_are_values(
        self, contract_store: EventStore, name: str
    ) -> None:
        """A ``$`` or a ``.`` in a stream id is part of the value, never an operator or a
        path: the operations touch that stream and no other."""
        sid = f"{name}-{unique()}"
        other = await stream_of(contract_store, 2)
        await contract_store.append(sid, [contract_event(sid, n) for n in (1, 2, 3)], 0)
        lifecycle = lifecycle_of(contract_store)
        await lifecycle.truncate(sid, 3)
        await lifecycle.set_retention(sid, max_count=2)
        await lifecycle.delete(sid, 3)
        assert await contract_store.read_stream(sid) == []
        assert len(await contract_store.read_stream(other)) == 2
        assert (await lifecycle.metadata(other)).has_policy is False

    @pytest.mark.parametrize("marker_type", [STREAM_DELETED, STREAM_DELETED_PERMANENTLY])
    async def test_a_marker_type_is_refused_outside_a_delete(
        self, contract_store: EventStore, marker_type: str
    ) -> None:
        """An event of a deletion marker's type appended by hand would delete its stream
        with no deletion recorded: refused, nothing written, the stream goes on."""
        sid = await stream_of(contract_store, 2)
        count = await contract_store.count()
        for expected in (2, ExpectedVersion.ANY):
            with pytest.raises(InvalidEventError, match="reserved for the stream lifecycle"):
                await contract_store.append(
                    sid, [contract_event(sid, 3, event_type=marker_type)], expected
                )
        assert await contract_store.count() == count
        (third,) = await contract_store.append(sid, [contract_event(sid, 3)], 2)
        assert third.version == 3 and len(await contract_store.read_stream(sid)) == 3


class LifecycleContract(
    DeletionContract,
    TruncationContract,
    LifecycleAggregatesContract,
    ScavengeContract,
    LifecycleHostileContract,
):
    """Every stream lifecycle contract."""
