"""Named consumers in a lane, as a service runs them: a process (a :class:`~eventlab.Subscriber`)
started, stopped, crashed or hung, and replaced by the next one; their effects, and what one
clean pass over the log would have made them.

A crash is a task cancelled at a race point whose process then does what a killed process does:
nothing. Its lease is neither renewed nor released (:class:`CrashableCheckpoints`), so a
successor stands by until it expires and then takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from .._core.errors import ConnectionFailedError
from .._core.records import StoredEvent
from .._core.tasks import ended
from .._follow.start import Start
from .._follow.subscriber import Subscriber
from ..ports import Checkpoint, CheckpointStore, LeaseGrant, UnitOfWork
from ..testing import eventually
from ._lanes import Lane

LEASE = 0.2
"""Seconds a consumer's lease lasts in the machines (a successor waits this long for a dead
predecessor)."""
FOLLOWING = {"poll_interval": 0.05, "gap_timeout": 0.1}
"""How consumers follow in the machines: quick to notice, quick to give up a dead hole."""
Mode = Literal["exactly_once", "at_least_once"]


class CrashableCheckpoints:
    """A lane's checkpoint store as one process sees it: once ``dead``, the process neither
    renews its lease (as if partitioned) nor releases it (as if killed)."""

    def __init__(self, inner: CheckpointStore) -> None:
        self.inner = inner
        self.dead = False

    async def get(self, name: str, uow: UnitOfWork | None = None) -> Checkpoint | None:
        return await self.inner.get(name, uow)

    async def position(self, name: str) -> int:
        return await self.inner.position(name)

    async def save(self, name: str, position: int, **options: Any) -> None:
        await self.inner.save(name, position, **options)

    async def delete(self, name: str) -> bool:
        return await self.inner.delete(name)

    async def all(self) -> list[Checkpoint]:
        return await self.inner.all()

    async def claim(self, name: str, owner: str, **options: Any) -> LeaseGrant:
        return await self.inner.claim(name, owner, **options)

    async def renew(self, name: str, owner: str, *, lease: float) -> bool:
        if self.dead:
            raise ConnectionFailedError("this process can no longer reach the deployment")
        return await self.inner.renew(name, owner, lease=lease)

    async def release(self, name: str, owner: str) -> None:
        if not self.dead:
            await self.inner.release(name, owner)

    async def holds(self, name: str, owner: str, uow: UnitOfWork) -> bool:
        return await self.inner.holds(name, owner, uow)


@dataclass
class Process:
    """One running instance of a consumer."""

    subscriber: Subscriber
    checkpoints: CrashableCheckpoints
    task: asyncio.Task[None]
    started_at: int | None = None
    """Where its subscription started (known once it is ready)."""

    def _alive(self) -> None:
        if self.task.done():
            self.task.result()  # a run that ended by itself: its error is the test's

    async def ready(self) -> None:
        """Until its subscription knows where it starts (after standing by, if it must)."""

        def started() -> bool:
            # The subscriber's own subscription: its readiness is the only signal there is.
            subscription = self.subscriber._subscription
            self._alive()
            return subscription is not None and subscription.ready.is_set()

        await eventually(started, f"{self.subscriber.name} starts following")
        assert self.subscriber._subscription is not None
        self.started_at = self.subscriber._subscription.position

    def done_through(self, head: int) -> bool:
        """Whether it has handed on, and committed, everything up to ``head``: its subscription
        is there, and the last batch it handed out (if any) is applied."""
        self._alive()
        subscription = self.subscriber._subscription
        if subscription is None or subscription.position < head:
            return False
        passed = subscription.position
        return self.subscriber.position == passed or passed == self.started_at

    async def stop(self) -> None:
        """Stop after the batch in hand, and wait until its run has ended."""
        await self.subscriber.stop()
        await eventually(self.task.done, f"{self.subscriber.name} stops")
        self._alive()

    async def kill(self) -> None:
        """What SIGKILL does to it: nothing more runs, nothing is released."""
        self.checkpoints.dead = True
        self.task.cancel()
        await ended(self.task)


@dataclass
class Consumer:
    """A named consumer in one lane: its settings (fixed at its first start), its current
    process, its effects."""

    lane: Lane
    name: str
    mode: Mode
    start: Start
    before_start: frozenset[Any] | None = None
    """Ids of the events stored when it first started (``start="end"`` skips exactly those)."""
    process: Process | None = None
    handled: Counter[str] = field(default_factory=Counter)
    interrupted: bool = False
    """A process of it was cut off between its handler and its checkpoint (at-least-once
    then handles that batch again)."""

    @property
    def actor(self) -> str:
        return f"{self.lane.name}:{self.name}"

    @property
    def effects_name(self) -> str:
        return f"fx_{self.name}"

    async def handle(self, events: tuple[StoredEvent, ...], uow: UnitOfWork | None) -> None:
        """Exactly-once: a row per event, counted, in the batch's transaction; at-least-once:
        an external effect (this process's memory)."""
        if uow is None:
            self.handled.update(str(e.event_id) for e in events)
            return
        rows = self.lane.read_models.batch(self.effects_name, 1, uow)
        keys = [str(e.event_id) for e in events]
        await rows.prefetch(keys)
        for key in keys:
            row = await rows.get(key) or {"n": 0}
            row["n"] += 1
            rows.put(key, row)
        await rows.flush()

    def launch(self) -> Process:
        checkpoints = CrashableCheckpoints(self.lane.checkpoints)
        subscriber = Subscriber(
            self.lane.store,
            self.name,
            None,
            on_batch=self.handle,
            mode=self.mode,
            checkpoints=checkpoints,
            start=self.start,
            lease=LEASE,
            batch_size=3,
            **FOLLOWING,
        )
        task = self.lane.spawn(subscriber.run, self.actor)
        return Process(subscriber, checkpoints, task)

    async def effects(self) -> dict[str, int]:
        if self.mode == "at_least_once":
            return dict(self.handled)
        rows = await self.lane.read_models.rows(self.effects_name, 1)
        return {row["_id"]: row["n"] for row in rows}

    def expected(self, log: list[StoredEvent]) -> list[str]:
        """What one clean pass from its start handles."""
        if self.start == "end":
            skipped = self.before_start or frozenset()
            return [str(e.event_id) for e in log if e.event_id not in skipped]
        after = 0 if self.start == "beginning" else int(self.start)
        return [str(e.event_id) for e in log if (e.position or 0) > after]

    async def caught_up(self) -> None:
        """Until its process has handed on everything up to the log's head."""
        process = self.process
        if process is None:
            return
        head = (await self.lane.store.log.head()).position
        await eventually(
            lambda: process.done_through(head), f"{self.actor} catches up with position {head}"
        )

    async def stop_all(self) -> None:
        if self.process is not None:
            with contextlib.suppress(Exception):
                await self.process.stop()
            self.process = None
