"""Rebuild an aggregate step by step and show what each event changed."""

from __future__ import annotations

import copy
import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pandas as pd

from .._core.domain import AggregateRoot, DomainEvent
from .._core.errors import ConfigurationError
from .._core.records import StoredEvent
from .._core.registry import EventRegistry
from ._display import show_value

A = TypeVar("A", bound=AggregateRoot)


def _flat_state(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts of state flattened to dotted keys (lists and objects stay whole)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(_flat_state(item, f"{name}."))
        else:
            flat[name] = item
    return flat


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One applied (or failed) event."""

    step: int
    version: int
    event_type: str
    state: dict[str, Any]
    changes: dict[str, tuple[Any, Any]]
    error: str | None


class ReplayTrace(Generic[A]):
    """The result of :func:`replay`: a table of steps, states at each version, and diffs."""

    def __init__(
        self,
        aggregate_class: type[A],
        aggregate_id: str,
        steps: list[ReplayStep],
        events: list[DomainEvent],
    ) -> None:
        self.aggregate_class = aggregate_class
        self.aggregate_id = aggregate_id
        self.steps = steps
        self._events = events

    @property
    def frame(self) -> pd.DataFrame:
        """One row per step: step, version, event_type, ``state.*`` columns, changed, error."""
        rows = []
        for s in self.steps:
            row: dict[str, Any] = {"step": s.step, "version": s.version, "event_type": s.event_type}
            row.update({f"state.{k}": v for k, v in s.state.items()})
            row["changed"] = ", ".join(
                f"{k}: {show_value(old)} → {show_value(new)}" for k, (old, new) in s.changes.items()
            )
            row["error"] = s.error
            rows.append(row)
        return pd.DataFrame(rows)

    @property
    def failed(self) -> list[ReplayStep]:
        """Steps whose event raised while being applied."""
        return [s for s in self.steps if s.error is not None]

    def __repr__(self) -> str:
        last = self.steps[-1].version if self.steps else 0
        return (
            f"<ReplayTrace {self.aggregate_class.__name__} {self.aggregate_id}: "
            f"{len(self.steps)} events to v{last}, {len(self.failed)} failed>"
        )

    def _repr_html_(self) -> str:
        header = html.escape(repr(self))
        return f"<p>{header}</p>" + str(self.frame.to_html(max_rows=60))

    def __len__(self) -> int:
        return len(self.steps)

    def at_version(self, version: int) -> A:
        """The aggregate as it was after the event at ``version`` (0 = before any event)."""
        known = {s.version for s in self.steps} | {0}
        if version not in known:
            raise ConfigurationError(
                f"version {version} is not in this trace ({min(known)}..{max(known)})"
            )
        aggregate = self.aggregate_class(self.aggregate_id)
        for step, event in zip(self.steps, self._events, strict=True):
            if step.version > version:
                break
            if step.error is None:
                aggregate.apply(event)
            aggregate.version = step.version
        return aggregate

    def state_at(self, version: int) -> dict[str, Any]:
        """The flattened state after ``version``."""
        if version == 0:
            return _flat_state(self.aggregate_class(self.aggregate_id).state())
        for step in self.steps:
            if step.version == version:
                return step.state
        raise ConfigurationError(f"version {version} is not in this trace")

    def diff(self, from_version: int, to_version: int) -> pd.DataFrame:
        """Fields that differ between two versions: field, before, after."""
        before, after = self.state_at(from_version), self.state_at(to_version)
        rows = [
            {"field": k, "before": before.get(k), "after": after.get(k)}
            for k in sorted(set(before) | set(after))
            if k != "version" and before.get(k) != after.get(k)
        ]
        return pd.DataFrame(rows, columns=["field", "before", "after"])


def replay(
    aggregate_class: type[A],
    events: Iterable[StoredEvent | DomainEvent],
    *,
    registry: EventRegistry | None = None,
    aggregate_id: str | None = None,
) -> ReplayTrace[A]:
    """Apply ``events`` one by one to a new ``aggregate_class`` and record every step.

    :class:`StoredEvent` records are typed through ``registry`` (required for them). An event
    whose handler raises is recorded with its error and replay continues with the next one, so a
    broken stream shows *where* it breaks instead of stopping halfway.
    """
    items = list(events)
    if aggregate_id is None:
        first = next((e for e in items if isinstance(e, StoredEvent)), None)
        aggregate_id = first.aggregate_id if first is not None else "replay"
    aggregate = aggregate_class(aggregate_id)
    previous = _flat_state(aggregate.state())
    steps: list[ReplayStep] = []
    typed: list[DomainEvent] = []
    for step, item in enumerate(items, start=1):
        version = item.version if isinstance(item, StoredEvent) else aggregate.version + 1
        error: str | None = None
        event: Any = item
        if isinstance(item, StoredEvent):
            if registry is None:
                raise ConfigurationError("replaying StoredEvent records needs registry=")
            try:
                event = registry.to_domain(item, unknown="raise")
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        if error is None:
            before = copy.deepcopy(aggregate.__dict__)
            try:
                aggregate.apply(event)
            except Exception as exc:
                aggregate.__dict__.clear()
                aggregate.__dict__.update(before)  # a failed apply leaves the state as it was
                error = f"{type(exc).__name__}: {exc}"
        aggregate.version = version
        state = _flat_state(aggregate.state())
        changes = {
            k: (previous.get(k), state.get(k))
            for k in state.keys() | previous.keys()
            if k != "version" and previous.get(k) != state.get(k)
        }
        steps.append(ReplayStep(step, version, _type_name(item), state, changes, error))
        typed.append(event)
        previous = state
    return ReplayTrace(aggregate_class, aggregate_id, steps, typed)


def _type_name(item: StoredEvent | DomainEvent) -> str:
    return item.event_type if isinstance(item, StoredEvent) else type(item).event_type
