"""Aggregates, snapshots and interleavings on top of the stream rules: saves (alone, in a unit
of work, in a unit of work run again after a conflict before its commit), loads from snapshots
checked against a full replay, a follower reading while an append holds its positions, and
a reader outside a unit of work looking in before it commits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from .._aggregates.store import AggregateStore
from .._core.errors import AggregateNotFoundError, WriteConflictError
from .._core.race_points import APPEND_POSITIONS_TAKEN, FOLLOW_BEFORE_ABANDON, UOW_BEFORE_COMMIT
from .._core.races import RacePoint
from .._core.records import StoredEvent
from ..ports import UnitOfWork
from ..testing import eventually
from ._domain import WHEN, Tallied, Tally, noted
from ._harness import Outcome, capture
from ._interleave import acting, at_point, paused
from ._lanes import Lane
from ._streams import STREAMS, StreamRules, shape


class StreamMachine(StreamRules):
    """Streams, aggregates with snapshots, and the interleavings of an append."""

    @rule(
        tally=st.sampled_from(["t1", "t2"]),
        by=st.integers(1, 5),
        mode=st.sampled_from(["alone", "in_unit", "in_unit_run_again"]),
    )
    def tally(self, tally: str, by: int, mode: str) -> None:
        """Load a tally (from its snapshot), record one event and save it: alone, in a unit of
        work, or in a unit of work whose commit meets a write conflict once, so that the
        runner runs the whole unit again (docs: a unit of work commits all of its writes once;
        ``AggregateStore.save`` clears pending events only once they are stored)."""
        event_id = self.ids()

        async def one(lane: Lane) -> Outcome:
            aggregates = AggregateStore(lane.store, snapshots=lane.snapshots)
            try:
                loaded = await aggregates.load(Tally, tally)
            except AggregateNotFoundError:
                loaded = Tally(tally)
            loaded.record(Tallied(by=by, event_id=event_id, occurred_at=WHEN))
            if mode == "alone":
                return await capture(lambda: aggregates.save(loaded), shape)
            return await capture(
                lambda: save_in_unit(lane, aggregates, loaded, mode == "in_unit_run_again"), shape
            )

        outcome = self.agree(self.each(lambda lane: lane.run(lambda: one(lane))), "a save")
        assert outcome.ok, f"saving {tally} ({mode}): {outcome!r}"
        saved = [row[0] for row in outcome.value]
        assert saved == [str(event_id)], (
            f"saving {tally} ({mode}) returned {saved}, not the event recorded ({event_id})"
        )
        self.model.record(tally, [event_id])
        self.loads_agree(tally)

    def loads_agree(self, tally: str) -> None:
        """A load from a snapshot equals the full replay (docs/projections.md, "Snapshots")."""

        async def one(lane: Lane) -> Outcome:
            from_snapshot = await AggregateStore(lane.store, snapshots=lane.snapshots).load(
                Tally, tally
            )
            replayed = await AggregateStore(lane.store).load(Tally, tally)
            assert from_snapshot.state() == replayed.state(), (
                f"{lane.name}: {tally} loads as {from_snapshot.state()} from its snapshot and as "
                f"{replayed.state()} from its events"
            )
            return Outcome(value=tuple(sorted(replayed.state().items())))

        self.agree(self.each(one), f"the state of {tally}")

    def read_beside(
        self,
        point: RacePoint,
        write: Callable[[Lane], Awaitable[list[StoredEvent]]],
        read: Callable[[Lane], Awaitable[list[StoredEvent]]],
        what: tuple[str, str],
    ) -> Outcome:
        """In every lane, ``read`` while ``write`` is held at ``point``; both went through,
        alike in every lane (``what`` names them): what the read saw."""

        async def one(lane: Lane) -> tuple[Outcome, Outcome]:
            return await at_point(
                lane,
                point,
                lambda: capture(lambda: write(lane), shape),
                lambda: capture(lambda: read(lane), _ids),
                otherwise="before",
            )

        results = self.each(one)
        written = self.agree({k: v[0] for k, v in results.items()}, what[0])
        seen = self.agree({k: v[1] for k, v in results.items()}, what[1])
        assert written.ok and seen.ok, (written, seen)
        return seen

    @rule(stream=STREAMS)
    def append_while_a_follower_reads(self, stream: str) -> None:
        """A follower reads the log to its head while an append holds its positions and has
        not inserted (``append.positions_taken``; with ``preallocated`` positions and no
        patience, the follower abandons them and the append goes again): the follower sees
        exactly what was committed before, and the append stands."""
        event = noted(self.ids(), stream, 0)
        expected = self.model.version(stream)
        before = list(self.model.order)

        seen = self.read_beside(
            APPEND_POSITIONS_TAKEN,
            lambda lane: lane.store.append(stream, [event], expected),
            lambda lane: lane.read_log(),
            ("an append held open", "a read beside it"),
        )
        assert list(seen.value) == before, f"the follower saw {seen.value}, committed: {before}"
        self.model.store(stream, (event,))

    @rule(stream=STREAMS)
    def abandon_a_hole_while_its_append_commits(self, stream: str) -> None:
        """An append holds its positions (``append.positions_taken``) while a follower reads to
        the head; the follower decides to abandon the hole (``follow.before_abandon``) just as
        the append inserts and commits there. Exactly one of the tombstone and the event
        wins: here the event, which the follower then hands on (``preallocated``); a
        ``transactional`` head never shows the held positions, and the follower ends before
        them (docs/positions.md, "Holes")."""
        event = noted(self.ids(), stream, 0)
        expected = self.model.version(stream)
        before = list(self.model.order)

        async def one(lane: Lane) -> Outcome:
            appended, seen, met = await _abandon_while_committing(lane, stream, event, expected)
            assert appended.ok and seen.ok, (appended, seen)
            # Where the follower met the commit at its abandonment, the event won the position;
            # where it did not (no hole to abandon, or a lane that does not mark the point),
            # the follower ended without it.
            wanted = [*before, event.event_id] if met else before
            assert list(seen.value) == wanted, (
                f"{lane.name}: a follower reading while an append held its positions saw "
                f"{list(seen.value)}; expected {wanted}"
            )
            return Outcome(value=appended.value, per_strategy=(met, seen.value))

        self.agree(self.each(one), "an abandonment meeting a commit")
        self.model.store(stream, (event,))

    @rule(first=STREAMS, second=STREAMS)
    def look_into_a_unit_before_it_commits(self, first: str, second: str) -> None:
        """A reader outside a unit of work, at ``uow.before_commit``, sees none of its writes
        (they become visible together, at its commit). It reads the two streams: a follower
        of the log would rightly wait there for the unit, which waits for the reader."""
        if first == second:
            return
        events = (noted(self.ids(), first, 0), noted(self.ids(), second, 0))
        versions = (self.model.version(first), self.model.version(second))
        before = [*self.model.streams[first], *self.model.streams[second]]

        async def unit(lane: Lane, uow: UnitOfWork) -> list[StoredEvent]:
            stored = await lane.store.append(first, [events[0]], versions[0], uow=uow)
            return stored + await lane.store.append(second, [events[1]], versions[1], uow=uow)

        async def outside(lane: Lane) -> list[StoredEvent]:
            return [
                *await lane.store.read_stream(first),
                *await lane.store.read_stream(second),
            ]

        seen = self.read_beside(
            UOW_BEFORE_COMMIT,
            lambda lane: lane.store.backend.run(lambda u: unit(lane, u)),
            outside,
            ("a unit of work", "a read from outside it"),
        )
        assert list(seen.value) == before, f"seen from outside: {seen.value}, before: {before}"
        self.model.store(first, events[:1])
        self.model.store(second, events[1:])


async def save_in_unit(
    lane: Lane, aggregates: AggregateStore, tally: Tally, run_again: bool
) -> list[StoredEvent]:
    """Save ``tally`` in a unit of work; with ``run_again``, the unit's commit first meets a
    write conflict (at ``uow.before_commit`` where the lane marks it, else at the end of the
    unit's work: the same moment), and the runner runs the unit again."""
    conflicted: list[bool] = []

    async def conflict() -> None:
        if run_again and not conflicted:
            conflicted.append(True)
            raise WriteConflictError("write conflict before the commit (injected once)")

    async def unit(uow: UnitOfWork) -> list[StoredEvent]:
        stored = await aggregates.save(tally, uow=uow)
        if not lane.marks(UOW_BEFORE_COMMIT.name):
            await conflict()
        return stored

    if not lane.marks(UOW_BEFORE_COMMIT.name):
        stored = await lane.store.backend.run(unit)
    else:
        async with acting(UOW_BEFORE_COMMIT, lane.name, conflict):
            stored = await lane.store.backend.run(unit)
    assert not run_again or conflicted, "the injected conflict did not happen"
    return stored


async def _abandon_while_committing(
    lane: Lane, stream: str, event: StoredEvent, expected: int
) -> tuple[Outcome, Outcome, bool]:
    """The append held at its positions; a follower whose abandonment waits for the append to
    commit (where the lane marks the points; else the follower first, then the append)."""
    reader = f"{lane.name}:reader"
    append = lambda: capture(lambda: lane.store.append(stream, [event], expected), shape)  # noqa: E731
    if not lane.marks(APPEND_POSITIONS_TAKEN.name):
        seen = await lane.run(lambda: capture(lane.read_log, _ids), reader)
        return await lane.run(append), seen, False
    async with paused(APPEND_POSITIONS_TAKEN, lane.name) as held:
        appending = lane.spawn(append, lane.name)
        await eventually(lambda: held.reached.is_set() or appending.done(), "the append holds")

        async def commit_first() -> None:
            held.resume()
            await asyncio.wait({appending})

        async with acting(FOLLOW_BEFORE_ABANDON, reader, commit_first) as committed:
            seen = await lane.run(lambda: capture(lane.read_log, _ids), reader)
        met = committed.is_set()
        if not met:
            await commit_first()
    return appending.result(), seen, met


def _ids(events: list[StoredEvent]) -> tuple[Any, Any]:
    return tuple(e.event_id for e in events), None
