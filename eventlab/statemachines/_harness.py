"""What every state machine shares: one event loop for a test's examples, lanes opened per
example, each operation run in every lane, and outcomes compared between lanes.

Hypothesis's rules are plain functions; each runs its lanes' coroutines to completion on the
harness's loop, so background actors (a subscriber's task) run only inside steps and are
stopped at the end of every example.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from ._lanes import Lane, LaneFactory

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What one operation did in one lane, in a form lanes can be compared by.

    ``value`` and ``error`` (the error's class name) must be equal in every lane; ``placed``
    (positions) only between lanes of the same position strategy where positions are dense."""

    value: Any = None
    error: str | None = None
    message: str = ""
    placed: Any = None
    per_strategy: Any = None
    """Compared between lanes of the same position strategy (what the strategy decides)."""
    raised: Exception | None = field(default=None, compare=False)
    result: Any = field(default=None, compare=False)
    """The operation's own result (records, reads), for the invariants."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.error is not None:
            return f"{self.error}({self.message[:200]!r})"
        placed = "" if self.placed is None else f" at {self.placed!r}"
        strategic = "" if self.per_strategy is None else f", {self.per_strategy!r}"
        return f"ok({self.value!r}{placed}{strategic})"


def plain(value: Any) -> tuple[Any, Any]:
    return value, None


async def capture(
    operation: Callable[[], Awaitable[T]], normalize: Callable[[T], tuple[Any, Any]] = plain
) -> Outcome:
    """``operation``'s result as ``(value, placed)``, or its error's class."""
    try:
        result = await operation()
    except Exception as exc:  # every error is compared by class between lanes
        return Outcome(error=type(exc).__name__, message=str(exc), raised=exc)
    value, placed = normalize(result)
    return Outcome(value=value, placed=placed, result=result)


async def attempt(
    lane: Lane,
    operation: Callable[[], Awaitable[T]],
    normalize: Callable[[T], tuple[Any, Any]] = plain,
) -> Outcome:
    """Run ``operation`` as ``lane`` (see :func:`capture`)."""
    return await lane.run(lambda: capture(operation, normalize))


class Harness:
    """The event loop and lane factories one test's examples share."""

    def __init__(self, factories: Sequence[LaneFactory]) -> None:
        self.factories = list(factories)
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    async def open(self) -> list[Lane]:
        lanes: list[Lane] = []
        for factory in self.factories:
            lanes += await factory.open()
        return lanes

    async def reset(self) -> None:
        for factory in self.factories:
            await factory.reset()

    def close(self) -> None:
        try:
            self.run(cancel_strays())
            for factory in self.factories:
                self.run(factory.close())
        finally:
            self.loop.close()


class LaneMachine(RuleBasedStateMachine):
    """A state machine over lanes: each rule runs in every lane, and lanes must agree.

    ``needs`` names what a lane must offer to take part (``"dcb"``); lanes without it sit the
    machine out. Subclasses add rules and invariants; :meth:`stop_actors` stops what they left
    running.
    """

    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.harness = harness
        self.lanes = [lane for lane in harness.run(harness.open()) if self._takes_part(lane)]

    def _takes_part(self, lane: Lane) -> bool:
        return "dcb" not in self.needs or lane.dcb is not None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.harness.run(coroutine)

    def each(self, operation: Callable[[Lane], Coroutine[Any, Any, T]]) -> dict[str, T]:
        """``operation(lane)`` in every lane, one lane after the other."""

        async def all_lanes() -> dict[str, T]:
            return {lane.name: await operation(lane) for lane in self.lanes}

        return self.run(all_lanes())

    def agree(self, outcomes: dict[str, Outcome], what: str) -> Outcome:
        """The lanes' common outcome; fails naming every lane's when they differ."""
        lanes = {lane.name: lane for lane in self.lanes}
        first = next(iter(outcomes.values()))
        dense = [
            (name, o) for name, o in outcomes.items() if lanes[name].strategy == "transactional"
        ]
        same = all((o.value, o.error) == (first.value, first.error) for o in outcomes.values())
        same_places = all(o.placed == dense[0][1].placed for _, o in dense) if dense else True
        by_strategy: dict[str, Any] = {}
        for name, outcome in outcomes.items():
            seen = by_strategy.setdefault(lanes[name].strategy, outcome.per_strategy)
            same_places = same_places and seen == outcome.per_strategy
        if not (same and same_places):
            shown = "\n".join(f"  {name}: {outcome!r}" for name, outcome in outcomes.items())
            raise AssertionError(f"the lanes disagree on {what}:\n{shown}")
        return first

    async def stop_actors(self) -> None:
        """Stop whatever the machine left running (subclasses)."""

    def teardown(self) -> None:
        async def end() -> None:
            try:
                await self.stop_actors()
            finally:
                await cancel_strays()
                await self.harness.reset()

        self.run(end())


async def cancel_strays() -> None:
    """Cancel whatever an example left running (a step that failed half-way) and wait for it:
    nothing of one example runs into the next, or outlives the loop."""
    strays = asyncio.all_tasks() - {asyncio.current_task()}
    for task in strays:
        task.cancel()
    await asyncio.gather(*strays, return_exceptions=True)


def run_machine(
    machine: type[LaneMachine],
    factories: Sequence[LaneFactory],
    *,
    settings: settings | None = None,
) -> None:
    """Run ``machine`` as a test over the lanes ``factories`` open (Hypothesis's settings:
    the loaded profile, unless given)."""
    harness = Harness(factories)
    try:
        # A factory is what Hypothesis calls to make each example's machine.
        factory = cast(type[RuleBasedStateMachine], lambda: machine(harness))
        run_state_machine_as_test(factory, settings=settings)
    finally:
        harness.close()
