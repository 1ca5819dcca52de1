"""The ports: what the application and the read side need from a backend, and what each
backend guarantees.

Each protocol states its contract in a sentence or two; the MongoDB adapters and the in-memory
backend fill them in, and the contract suites in :mod:`eventlab.contracts` check them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Protocol, Self

from ._records import StoredEvent

PositionStrategy = Literal["transactional", "preallocated"]
"""How appends take positions (docs/positions.md). Recorded with the store's position counter
when the store is created; every reader takes it from there."""


@dataclass(frozen=True, slots=True)
class LogHead:
    """The head of the log as one read saw it."""

    position: int
    """The highest position handed out so far (0 for a new store)."""
    strategy: PositionStrategy
    """The strategy recorded with the counter."""
    settled_after: int
    """Every position in ``(settled_after, position]`` is settled: committed, or never going
    to be. Below it (and above it, with ``preallocated`` positions) a reader must look at each
    position: ``position`` for ``preallocated``; ``0`` for a ``transactional`` store, or the
    position at which it was migrated from ``preallocated``."""

    def settles(self, after: int, until: int) -> bool:
        """Whether every position in ``(after, until]`` is settled."""
        return after >= self.settled_after and until <= self.position


@dataclass(frozen=True, slots=True)
class LogSlice:
    """What :meth:`EventLog.read` found in a range of positions."""

    events: list[StoredEvent]
    """The events that pass the filters, in position order."""
    through: int
    """The slice covers ``(after, through]``: the range asked for, or less when the read hit
    its ``limit``."""
    present: frozenset[int] | None = None
    """Every position of the slice holding an event (filtered out or not) or a tombstone;
    ``None`` when the read was not asked for them."""
    abandoned: tuple[int, ...] = ()
    """Positions of the slice recorded as permanent gaps (tombstones)."""


@dataclass(frozen=True, slots=True)
class Abandonment:
    """What :meth:`EventLog.abandon` did with each position it was given."""

    abandoned: tuple[int, ...] = ()
    """Now permanent gaps (by this call or an earlier one): no append can commit there."""
    filled: tuple[int, ...] = ()
    """An event committed there first."""
    in_flight: tuple[int, ...] = ()
    """An open transaction holds an event there: it may still commit; look again later."""


class Wakeups(Protocol):
    """A signal that the log may have grown: woken on appends, or after a timeout."""

    watching: bool
    """Whether appends wake it (``False``: it only times out, the caller polls)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def wait(self, timeout: float) -> None:
        """Return when an append may have happened since the last call, or after ``timeout``."""
        ...

    def wake(self) -> None:
        """Make the current or next :meth:`wait` return at once."""
        ...


class EventLog(Protocol):
    """The global log of a store, as followers read it: positions in commit order where they
    are settled, and a way to settle a hole for good that an append cannot race past."""

    async def head(self) -> LogHead:
        """The highest position handed out, the strategy and what is settled.

        Read after a range, a head never shows less than that range holds."""
        ...

    async def read(
        self,
        after: int,
        until: int,
        *,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        every_position: bool = False,
        limit: int | None = None,
    ) -> LogSlice:
        """The events with ``after < position <= until`` that pass the filters, in position
        order. ``every_position``: also every occupied position of the range (payloads of
        filtered-out events are not read). ``limit``: at most that many documents are looked
        at, and the slice ends at the last of them when it is reached. Tombstones are never
        returned as events."""
        ...

    async def abandon(self, positions: Sequence[int]) -> Abandonment:
        """Record each position as a permanent gap unless an append has committed there or
        holds it: exactly one of a tombstone and an event ever exists at a position, and an
        append that loses the race stores nothing."""
        ...

    def wakeups(self, *, mode: Literal["auto", "push", "poll"] = "auto") -> Wakeups:
        """A :class:`Wakeups` for this log (``push``: appends must wake it, or fail)."""
        ...
