"""Named race points: the places in eventlab's hard paths where a test may run another actor.

A race point marks a moment between two steps of one decision (between a DCB read's parts,
between taking positions and inserting, between a follower's head read and its range read, ...)
at which another writer, a crash or a restart would expose a broken promise. A module declares
its points once, at import::

    BETWEEN_ITEMS = races.point("dcb.read.between_items")

and marks the moment with a check that costs one attribute read when nothing is armed::

    if BETWEEN_ITEMS.armed:
        await BETWEEN_ITEMS.reach()

A test (or ``eventlab check``) arms a point with an action to run there, deterministically,
the next ``times`` times the point is reached::

    async with races.acting_at("dcb.read.between_items", other_writer_appends):
        read = await dcb.read(query)

or pauses whoever reaches it, does what it wants meanwhile, and lets it go on::

    async with races.paused_at("append.positions_taken") as pause:
        task = asyncio.create_task(store.append(...))
        await pause.reached.wait()
        ...  # another actor acts while the append holds its positions
        pause.resume()
        await task

Sync code (the ``eventsourcing`` module's threads) marks its points with ``reach_sync`` and is
armed with :func:`acting_at_sync`. Names are checked when armed: a misspelt name is an error,
never a point that silently never fires.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from .errors import ConfigurationError

AsyncAction = Callable[[], Awaitable[Any]]
SyncAction = Callable[[], Any]


class RacePoint:
    """One named moment in a hard path. ``armed`` is the only thing read when no test is
    running, so an unarmed point costs an attribute read."""

    __slots__ = ("_actions", "_lock", "armed", "name", "reached_count")

    def __init__(self, name: str) -> None:
        self.name = name
        self.armed = False
        self.reached_count = 0
        """How many times the point was reached while armed (for tests' assertions)."""
        self._actions: list[tuple[AsyncAction | None, SyncAction | None]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RacePoint {self.name!r}{' armed' if self.armed else ''}>"

    def _next(self) -> tuple[AsyncAction | None, SyncAction | None] | None:
        with self._lock:
            if not self._actions:
                self.armed = False
                return None
            action = self._actions.pop(0)
            self.reached_count += 1
            self.armed = bool(self._actions)
            return action

    async def reach(self) -> None:
        """Run the next armed action here (async code)."""
        action = self._next()
        if action is None:
            return
        run_async, run_sync = action
        if run_async is not None:
            await run_async()
        elif run_sync is not None:
            run_sync()

    def reach_sync(self) -> None:
        """Run the next armed action here (sync code: it must have been armed with a sync
        action)."""
        action = self._next()
        if action is None:
            return
        _, run_sync = action
        if run_sync is None:
            raise ConfigurationError(
                f"race point {self.name!r} is reached by sync code: arm it with acting_at_sync"
            )
        run_sync()

    def _arm(self, actions: list[tuple[AsyncAction | None, SyncAction | None]]) -> None:
        with self._lock:
            self._actions.extend(actions)
            self.armed = bool(self._actions)

    def _disarm(self) -> None:
        with self._lock:
            self._actions.clear()
            self.armed = False


_POINTS: dict[str, RacePoint] = {}


def point(name: str) -> RacePoint:
    """Declare (or get) the race point ``name``; modules call this once, at import."""
    existing = _POINTS.get(name)
    if existing is None:
        existing = _POINTS[name] = RacePoint(name)
    return existing


def names() -> list[str]:
    """Every declared race point, by name (the modules that declare them must be imported)."""
    return sorted(_POINTS)


def _declared(name: str) -> RacePoint:
    found = _POINTS.get(name)
    if found is None:
        raise ConfigurationError(f"no race point named {name!r}; declared: {', '.join(names())}")
    return found


def _times(times: int) -> int:
    if type(times) is not int or times < 1:
        raise ConfigurationError(f"times must be a positive int, got {times!r}")
    return times


@asynccontextmanager
async def acting_at(name: str, action: AsyncAction, *, times: int = 1) -> AsyncIterator[RacePoint]:
    """Run ``action`` the next ``times`` times an async path reaches ``name``; disarmed on
    exit."""
    with _armed(name, (action, None), times) as race:
        yield race


@contextmanager
def acting_at_sync(name: str, action: SyncAction, *, times: int = 1) -> Iterator[RacePoint]:
    """Run ``action`` (a plain function) the next ``times`` times ``name`` is reached."""
    with _armed(name, (None, action), times) as race:
        yield race


@contextmanager
def _armed(
    name: str, actions: tuple[AsyncAction | None, SyncAction | None], times: int
) -> Iterator[RacePoint]:
    """The race point ``name`` armed with ``actions`` for its next ``times`` passes, disarmed
    on exit."""
    race = _declared(name)
    race._arm([actions] * _times(times))
    try:
        yield race
    finally:
        race._disarm()


class Pause:
    """Whoever reaches the point waits there until :meth:`resume`; ``reached`` is set when it
    arrives."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._go = asyncio.Event()

    async def _hold(self) -> None:
        self.reached.set()
        await self._go.wait()

    def resume(self) -> None:
        self._go.set()


@asynccontextmanager
async def paused_at(name: str) -> AsyncIterator[Pause]:
    """Hold the next async path that reaches ``name`` until ``pause.resume()`` (resumed on
    exit in any case, so nothing stays stuck)."""
    pause = Pause()
    with _armed(name, (pause._hold, None), 1):
        try:
            yield pause
        finally:
            pause.resume()
