"""Projectors beside the consumers: run to the head, followed live, stopped, crashed at a race
point and restarted, rebuilt beside the live read model. Whenever the live read model has
caught up it must equal one clean pass of its projection over the log (docs/projections.md:
exactly-once batches, rebuilds that swap a whole read model)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from .._core.race_points import BATCH_HANDLED
from .._follow.projector import Projector
from ..testing import eventually
from ._consumers import FOLLOWING, LEASE, CrashableCheckpoints
from ._domain import counts_for, expected_counts
from ._followers import ConsumerRules, _reached_or_ended
from ._harness import Harness, Outcome
from ._interleave import paused
from ._lanes import Lane


@dataclass
class LiveProjector:
    projector: Projector
    checkpoints: CrashableCheckpoints
    task: asyncio.Task[None]


class FollowerMachine(ConsumerRules):
    """Consumers and a projector of every lane."""

    def __init__(self, harness: Harness) -> None:
        super().__init__(harness)
        self.live: dict[str, LiveProjector] = {}

    def projector(self, lane: Lane, checkpoints: CrashableCheckpoints | None = None) -> Projector:
        return Projector(
            lane.store,
            counts_for(lane.tag),
            checkpoints=checkpoints or CrashableCheckpoints(lane.checkpoints),
            read_models=lane.read_models,
            batch_size=3,
            lease=LEASE,
            poll_interval=FOLLOWING["poll_interval"],
            gap_timeout=FOLLOWING["gap_timeout"],
        )

    def projecting(self) -> bool:
        return bool(self.live)

    async def read_model_is_one_pass(self, lane: Lane, projector: Projector) -> Outcome:
        log = await lane.read_log()
        rows = {row.pop("_id"): row for row in await projector.rows()}
        expected = expected_counts(log)
        assert rows == expected, (
            f"{lane.name}: the read model is {rows}; one clean pass over the log makes {expected}"
        )
        return Outcome(value=tuple(sorted((k, tuple(sorted(v.items()))) for k, v in rows.items())))

    @precondition(lambda self: not self.projecting())
    @rule()
    def project_to_the_head(self) -> None:
        async def one(lane: Lane) -> Outcome:
            projector = self.projector(lane)
            await projector.run_until_caught_up()
            return await self.read_model_is_one_pass(lane, projector)

        self.agree(self.each(lambda lane: lane.run(lambda: one(lane))), "the read model")

    @precondition(lambda self: not self.projecting())
    @rule()
    def start_projecting(self) -> None:
        async def one(lane: Lane) -> None:
            checkpoints = CrashableCheckpoints(lane.checkpoints)
            projector = self.projector(lane, checkpoints)
            task = lane.spawn(projector.run, f"{lane.name}:projector")
            self.live[lane.name] = LiveProjector(projector, checkpoints, task)

        self.each(one)

    @precondition(lambda self: self.projecting())
    @rule()
    def stop_projecting(self) -> None:
        async def one(lane: Lane) -> None:
            live = self.live.pop(lane.name)
            await live.projector.stop()
            await eventually(live.task.done, "the projector stops")
            live.task.result()

        self.each(one)

    @precondition(lambda self: self.projecting())
    @rule(count=st.integers(1, 3))
    def crash_the_projector(self, count: int) -> None:
        """The projector's process dies inside a batch (``batch.handled``: rows written in the
        batch's transaction, checkpoint not saved); its lease is left to expire."""
        events = self.events(count)

        async def one(lane: Lane) -> None:
            live = self.live.pop(lane.name)
            async with paused(BATCH_HANDLED, f"{lane.name}:projector") as pause:
                assert (await self.append_in(lane, events)).ok
                await _reached_or_ended(pause.reached, live.task)
                live.checkpoints.dead = True
                live.task.cancel()
                await asyncio.wait({live.task})

        self.each(one)

    @rule()
    def rebuild(self) -> None:
        """A rebuild beside the live read model (if one runs), then the swap."""

        async def one(lane: Lane) -> None:
            await self.projector(lane).rebuild()

        self.each(lambda lane: lane.run(lambda: one(lane)))

    @invariant()
    def the_live_read_model_is_one_pass(self) -> None:
        if not self.live:
            return

        async def one(lane: Lane) -> Outcome:
            projector = self.live[lane.name].projector
            task = self.live[lane.name].task

            async def caught_up() -> bool:
                if task.done():
                    task.result()
                return (await projector.status()).behind == 0

            await eventually(caught_up, f"{lane.name}: the projector catches up")
            return await self.read_model_is_one_pass(lane, projector)

        self.agree(self.each(one), "the live read model")

    async def stop_actors(self) -> None:
        await super().stop_actors()
        for live in self.live.values():
            await live.projector.stop()
            await asyncio.wait({live.task})
        self.live.clear()
