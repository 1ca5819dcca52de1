"""Followers of the log in every lane: named consumers started with every ``start`` in both
delivery modes, stopped, restarted, crashed at a race point (their lease left to expire),
hung and replaced by a successor that takes their lease over, started while an append holds
its positions. After every step each running consumer catches up, and its effects must equal
one clean pass over the log from where it first started (docs/positions.md: never skip,
never repeat; exactly-once effects through crashes and takeovers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .._core.race_points import (
    APPEND_POSITIONS_TAKEN,
    BATCH_HANDLED,
    FOLLOW_HEAD_READ,
    LEASE_EXPIRED_SEEN,
    LEASE_TAKEN_OVER,
)
from .._core.records import ExpectedVersion, StoredEvent
from .._follow.start import Start
from ..testing import eventually
from ._consumers import Consumer, Mode, Process
from ._domain import Ids, noted
from ._harness import Harness, LaneMachine, Outcome, capture
from ._interleave import ActorPause, acting, at_point, paused
from ._invariants import check_effects, check_log
from ._lanes import Lane

CONSUMERS = ("c1", "c2")
WHICH = st.integers(0, 1)
MODES = st.sampled_from(["exactly_once", "at_least_once"])
STARTS = st.sampled_from(["beginning", "end", "position"])


def _ids(events: list[StoredEvent]) -> tuple[Any, Any]:
    return tuple(e.event_id for e in events), None


class ConsumerRules(LaneMachine):
    """Consumers of the log through stops, restarts, crashes and takeovers."""

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.ids = Ids()
        self.consumers: dict[str, dict[str, Consumer]] = {lane.name: {} for lane in self.lanes}
        self.streams = 0

    def running(self, name: str) -> bool:
        return any(c.get(name) and c[name].process for c in self.consumers.values())

    def known(self, name: str) -> bool:
        return all(name in c for c in self.consumers.values())

    def pick(self, which: int, *, running: bool) -> str:
        """The ``which``-th consumer name that is (or is not) running."""
        names = [n for n in CONSUMERS if self.running(n) == running]
        return names[which % len(names)]

    def some_running(self) -> bool:
        return any(self.running(n) for n in CONSUMERS)

    def some_stopped(self) -> bool:
        return not all(self.running(n) for n in CONSUMERS)

    def some_unknown(self) -> bool:
        return not all(self.known(n) for n in CONSUMERS)

    # -- the log ---------------------------------------------------------------------------

    def events(self, count: int) -> list[StoredEvent]:
        self.streams += 1
        stream = f"f{self.streams % 3}"
        return [noted(self.ids(), stream, n) for n in range(count)]

    async def append_in(self, lane: Lane, events: list[StoredEvent]) -> Outcome:
        stream = events[0].aggregate_id
        return await capture(lambda: lane.store.append(stream, events, ExpectedVersion.ANY), _ids)

    @rule(count=st.integers(1, 4))
    def append(self, count: int) -> None:
        events = self.events(count)
        outcome = self.agree(
            self.each(lambda lane: lane.run(lambda: self.append_in(lane, events))), "an append"
        )
        assert outcome.ok, outcome

    @precondition(lambda self: self.some_running())
    @rule(which=WHICH, count=st.integers(1, 3))
    def append_while_a_consumer_reads(self, which: int, count: int) -> None:
        """More events are appended while a consumer holds a head of the log and has not read
        the range up to it (``follow.head_read``): it hands them on later, none skipped."""
        name = self.pick(which, running=True)
        first, more = self.events(1), self.events(count)

        async def one(lane: Lane) -> None:
            consumer = self.consumers[lane.name][name]

            async def others() -> None:
                assert (await self.append_in(lane, more)).ok

            async with acting(FOLLOW_HEAD_READ, consumer.actor, others) as appended:
                assert (await self.append_in(lane, first)).ok
                await consumer.caught_up()
            if not appended.is_set():  # a lane whose followers do not mark the point
                await others()

        self.each(one)

    # -- consumers -------------------------------------------------------------------------

    def first_start(self, lane: Lane, name: str, mode: Mode, start: Start) -> Consumer:
        consumer = self.consumers[lane.name].get(name)
        if consumer is None:
            consumer = self.consumers[lane.name][name] = Consumer(lane, name, mode, start)
        return consumer

    async def start_in(self, consumer: Consumer) -> None:
        lane = consumer.lane
        if consumer.before_start is None and consumer.start == "end":
            # What is committed now, read without waiting for (or abandoning) a hole.
            head = await _head(lane)
            committed = (await lane.store.log.read(0, head)).events
            consumer.before_start = frozenset(e.event_id for e in committed)
        process = consumer.process = consumer.launch()
        await process.ready()

    @precondition(lambda self: self.some_stopped())
    @rule(which=WHICH, mode=MODES, start=STARTS, at=st.integers(0, 6))
    def start(self, which: int, mode: Mode, start: str, at: int) -> None:
        """Start a consumer (its settings are those of its first start, as a service's)."""
        self.start_named(self.pick(which, running=False), mode, start, at)

    def start_named(self, name: str, mode: Mode, start: str, at: int) -> None:
        first = not self.known(name)

        async def one(lane: Lane) -> None:
            where: Start = min(at, await _head(lane))
            if start in ("beginning", "end"):
                where = "beginning" if start == "beginning" else "end"
            consumer = self.first_start(lane, name, mode, where)
            await self.start_in(consumer)

        self.each(one)
        if first:
            self.settings_agree(name)

    def settings_agree(self, name: str) -> None:
        shown = {lane: (c[name].mode, c[name].start) for lane, c in self.consumers.items()}
        assert len(set(shown.values())) == 1, f"{name} starts differently in the lanes: {shown}"

    @precondition(lambda self: self.some_running())
    @rule(which=WHICH)
    def stop(self, which: int) -> None:
        self.stop_named(self.pick(which, running=True))

    def stop_named(self, name: str) -> None:
        async def one(lane: Lane) -> None:
            consumer = self.consumers[lane.name][name]
            assert consumer.process is not None
            await consumer.process.stop()
            consumer.process = None

        self.each(one)

    @precondition(lambda self: self.some_running())
    @rule(which=WHICH, count=st.integers(0, 3))
    def restart(self, which: int, count: int) -> None:
        """A deploy: the consumer stops, writers append while it is down, it starts again (with
        the settings of its first start): it goes on from its checkpoint."""
        name = self.pick(which, running=True)
        self.stop_named(name)
        if count:
            self.append(count)
        self.start_named(name, "exactly_once", "beginning", 0)  # settings: its first start's

    @asynccontextmanager
    async def _inside_a_batch(
        self, lane: Lane, consumer: Consumer, events: list[StoredEvent]
    ) -> AsyncIterator[tuple[Process, ActorPause]]:
        """The consumer's running process held inside the batch that ``events``, appended now,
        make (``batch.handled``: handler run, checkpoint not saved), or ended trying."""
        process = consumer.process
        assert process is not None
        async with paused(BATCH_HANDLED, consumer.actor) as pause:
            assert (await self.append_in(lane, events)).ok
            await _reached_or_ended(pause.reached, process.task)
            yield process, pause

    @precondition(lambda self: self.some_running())
    @rule(which=WHICH, count=st.integers(1, 3))
    def crash(self, which: int, count: int) -> None:
        """The consumer's process dies while it holds a batch (``batch.handled``: handler run,
        checkpoint not saved); its lease is left to expire."""
        name = self.pick(which, running=True)
        events = self.events(count)

        async def one(lane: Lane) -> None:
            consumer = self.consumers[lane.name][name]
            async with self._inside_a_batch(lane, consumer, events) as (process, _):
                await process.kill()
            consumer.process = None
            consumer.interrupted = True

        self.each(one)

    @precondition(lambda self: self.some_running())
    @rule(which=WHICH, count=st.integers(1, 3), resume_at=st.sampled_from(["seen", "taken"]))
    def replace_a_hung_process(self, which: int, count: int, resume_at: str) -> None:
        """The consumer's process hangs inside a batch (``batch.handled``) and stops renewing
        its lease; a successor stands by, takes the lease over and follows. The hung process
        wakes up when the successor has seen the lease expired (``lease.expired_seen``: it can
        still commit) or has taken it over (``lease.taken_over``: its transaction was ended
        and its saves are fenced); either way every event is handled once."""
        name = self.pick(which, running=True)
        events = self.events(count)
        point = LEASE_EXPIRED_SEEN if resume_at == "seen" else LEASE_TAKEN_OVER

        async def one(lane: Lane) -> None:
            consumer = self.consumers[lane.name][name]
            async with self._inside_a_batch(lane, consumer, events) as (hung, pause):
                hung.checkpoints.dead = True

                async def wake_the_hung_one() -> None:
                    pause.resume()
                    await hung.stop()

                async with acting(point, consumer.actor, wake_the_hung_one) as woke:
                    successor = consumer.launch()
                    await successor.ready()
                assert woke.is_set() or not lane.marks(point.name), (
                    f"{lane.name}: the successor took over without passing {point.name}"
                )
                if not woke.is_set():  # a lane whose code does not mark the point: after it
                    await wake_the_hung_one()
            consumer.process = successor
            consumer.interrupted = True

        self.each(one)

    @precondition(lambda self: self.some_unknown())
    @rule(which=WHICH, mode=MODES)
    def start_while_an_append_holds_its_positions(self, which: int, mode: Mode) -> None:
        """A consumer first started at ``"end"`` while an append holds its positions and has
        not inserted (``append.positions_taken``): the append commits after the consumer
        started, so the consumer must handle it (README: a subscription never skips an event
        that commits late, whatever the store's position strategy)."""
        unknown = [n for n in CONSUMERS if not self.known(n)]
        name = unknown[which % len(unknown)]
        events = self.events(1)

        async def one(lane: Lane) -> None:
            consumer = self.first_start(lane, name, mode, "end")

            async def begin() -> Outcome:
                await self.start_in(consumer)
                return Outcome()

            appended, _ = await at_point(
                lane,
                APPEND_POSITIONS_TAKEN,
                lambda: self.append_in(lane, events),
                begin,
                otherwise="before",
            )
            assert appended.ok, appended

        self.each(one)

    # -- what must hold ----------------------------------------------------------------------

    @invariant()
    def consumers_handle_every_event_once(self) -> None:
        """Every running consumer catches up; then its effects are one clean pass over the
        log from its start (at-least-once may repeat what a crash cut off). The logs agree."""

        async def one(lane: Lane) -> Outcome:
            log = await lane.read_log()
            check_log(lane.name, lane.strategy, log)
            for consumer in self.consumers[lane.name].values():
                if consumer.process is None:
                    continue
                await consumer.caught_up()
                check_effects(
                    lane.name,
                    consumer.name,
                    await consumer.effects(),
                    consumer.expected(log),
                    repeats=consumer.interrupted and consumer.mode == "at_least_once",
                )
            return Outcome(value=tuple(e.event_id for e in log))

        self.agree(self.each(one), "the log")

    async def stop_actors(self) -> None:
        for consumers in self.consumers.values():
            for consumer in consumers.values():
                await consumer.stop_all()


async def _head(lane: Lane) -> int:
    return (await lane.store.log.head()).position


async def _reached_or_ended(reached: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Until a paused actor is at its point (or has ended: its error is the test's)."""
    await eventually(lambda: reached.is_set() or task.done(), "the batch is held")
    if task.done():
        task.result()
