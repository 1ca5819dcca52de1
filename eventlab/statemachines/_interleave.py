"""Running another actor at a race point, for one actor of one lane only.

Race points are global to the process while a state machine drives several lanes (and
background consumers) at once, so every action armed here checks who reached the point
(:data:`~eventlab.statemachines._lanes.CURRENT_ACTOR`) and lets everyone else pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from .._core.races import RacePoint, acting_at
from ._harness import Outcome
from ._lanes import CURRENT_ACTOR, Lane

_ARMED_FOR = 1_000
"""How many passes an actor-filtered action is armed for (other actors' passes use some)."""


async def at_point(
    lane: Lane,
    point: RacePoint,
    operation: Callable[[], Awaitable[Outcome]],
    meanwhile: Callable[[], Awaitable[Outcome]],
    *,
    otherwise: Literal["before", "after"],
) -> tuple[Outcome, Outcome]:
    """Run ``operation`` as ``lane`` and, when it reaches ``point``, ``meanwhile`` there (the
    operation waits for it). Where the lane's code does not mark the point, or the operation
    never passes it, ``meanwhile`` runs in the order that is equivalent for the point:
    ``"before"`` the operation (the point lies before anything it does becomes visible) or
    ``"after"`` it (the point lies after what it reports was fixed)."""
    if not lane.marks(point.name) and otherwise == "before":
        seen = await lane.run(meanwhile)
        return await lane.run(operation), seen
    fired: list[bool] = []
    seen_there: list[Outcome] = []

    async def action() -> None:
        if CURRENT_ACTOR.get() != lane.name or fired:
            return
        fired.append(True)
        seen_there.append(await meanwhile())

    async with acting_at(point.name, action, times=_ARMED_FOR):
        done = await lane.run(operation)
    if not seen_there:
        seen_there.append(await lane.run(meanwhile))
    return done, seen_there[0]


class ActorPause:
    """Holds the first pass of one actor at a point until :meth:`resume`."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.reached = asyncio.Event()
        self._go = asyncio.Event()

    async def hold(self) -> None:
        if CURRENT_ACTOR.get() != self.actor or self.reached.is_set():
            return
        self.reached.set()
        await self._go.wait()

    def resume(self) -> None:
        self._go.set()


@asynccontextmanager
async def paused(point: RacePoint, actor: str) -> AsyncIterator[ActorPause]:
    """Hold ``actor`` at ``point`` (resumed on exit in any case)."""
    pause = ActorPause(actor)
    async with acting_at(point.name, pause.hold, times=_ARMED_FOR):
        try:
            yield pause
        finally:
            pause.resume()


@asynccontextmanager
async def acting(
    point: RacePoint, actor: str, action: Callable[[], Awaitable[None]]
) -> AsyncIterator[asyncio.Event]:
    """Run ``action`` the first time ``actor`` reaches ``point``; the event is set once it
    has run."""
    ran = asyncio.Event()
    fired: list[bool] = []

    async def filtered() -> None:
        if CURRENT_ACTOR.get() != actor or fired:
            return
        fired.append(True)
        await action()
        ran.set()

    async with acting_at(point.name, filtered, times=_ARMED_FOR):
        yield ran
