"""A store's options that mean the same on every backend: how it takes positions, and how long
its transactions are retried. Checked here once, for MongoDB's store and the in-memory one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigurationError
from .registry import EventRegistry

PositionStrategy = Literal["transactional", "preallocated"]
"""How appends take positions (docs/positions.md). Recorded with the store's position counter
when the store is created; every reader takes it from there."""

STRATEGIES: tuple[PositionStrategy, ...] = ("transactional", "preallocated")

DEFAULT_TIME_BUDGET = 60.0
"""Seconds a transaction keeps being retried before its error is raised."""

MAX_TIME_BUDGET = 86_400
"""A day: a longer budget is a mistake, not a policy."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """The options of an event store that every backend shares, checked.

    :param positions: the strategy a new store takes positions by (``None``: the one recorded
        with an existing store, or ``"transactional"`` for a new one).
    :param transaction_time_budget: seconds to keep retrying transient transaction failures.
    """

    positions: PositionStrategy | None = None
    transaction_time_budget: float = DEFAULT_TIME_BUDGET

    def __post_init__(self) -> None:
        if self.positions is not None:
            check_positions(self.positions)
        budget = check_time_budget(self.transaction_time_budget, "transaction_time_budget")
        object.__setattr__(self, "transaction_time_budget", budget)


def check_positions(positions: Any) -> PositionStrategy:
    """A position strategy: ``"transactional"`` or ``"preallocated"``."""
    if not isinstance(positions, str) or positions not in STRATEGIES:
        raise ConfigurationError(
            f"positions must be 'transactional' or 'preallocated', got {positions!r:.80}"
        )
    strategy: PositionStrategy = positions
    return strategy


def check_time_budget(seconds: Any, name: str = "time_budget") -> float:
    """A time budget: a positive, finite number of seconds (a day at most)."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_TIME_BUDGET  # NaN and infinity fail this too
    ):
        raise ConfigurationError(
            f"{name} must be a number of seconds above 0 and at most {MAX_TIME_BUDGET:,}, "
            f"got {seconds!r:.80}"
        )
    return float(seconds)


def time_budget_or_default(seconds: Any) -> float:
    """A unit of work's time budget: the default when none is given, else checked."""
    return DEFAULT_TIME_BUDGET if seconds is None else check_time_budget(seconds)


def registry_or_new(registry: Any) -> EventRegistry:
    """A store's registry: the one given, or a new, empty one."""
    if registry is None:
        return EventRegistry()
    if not isinstance(registry, EventRegistry):
        raise ConfigurationError(f"registry must be an EventRegistry, got {registry!r:.80}")
    return registry
