"""A projection in memory: replayed step by step over events, and two versions of it compared.

The handlers are the very ones a :class:`~eventlab.Projector` runs against MongoDB; here they
write :class:`~eventlab.MemoryRows`, so a notebook shows what a code change would do to the
read model before it is deployed.
"""

from __future__ import annotations

import copy
import html
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from .._core.errors import ConfigurationError
from .._core.progress import progress_bar
from .._core.records import StoredEvent
from .._follow.projections import MemoryRows, Projection, check_projection
from ._display import show_value

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProjectionStep:
    """One event through a projection: the rows it changed, before and after."""

    step: int
    position: int | None
    event_type: str
    aggregate_id: str
    changed: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]


class ProjectionTrace:
    """What :func:`replay_projection` returns: the steps and the read model at the end."""

    def __init__(self, projection: Projection, steps: list[ProjectionStep], rows: MemoryRows):
        self.projection = projection
        self.steps = steps
        self.rows = rows

    @property
    def frame(self) -> pd.DataFrame:
        """One row per event that changed the read model: position, type, key, what changed."""
        records = []
        for step in self.steps:
            for key, (before, after) in step.changed.items():
                records.append(
                    {
                        "step": step.step,
                        "position": step.position,
                        "event_type": step.event_type,
                        "key": key,
                        "change": "insert" if before is None else "delete" if after is None
                        else "update",
                        "changed": _describe(before or {}, after or {}),
                    }
                )  # fmt: skip
        return pd.DataFrame(
            records, columns=["step", "position", "event_type", "key", "change", "changed"]
        )

    @property
    def read_model(self) -> pd.DataFrame:
        """The read model at the end, one row per key."""
        return _rows_frame(self.rows.rows)

    def at(self, step: int) -> pd.DataFrame:
        """The read model as it stood after ``step`` events."""
        rows: dict[str, dict[str, Any]] = {}
        for s in self.steps[:step]:
            for key, (_, after) in s.changed.items():
                if after is None:
                    rows.pop(key, None)
                else:
                    rows[key] = after
        return _rows_frame(rows)

    def __repr__(self) -> str:
        return (
            f"<ProjectionTrace {type(self.projection).name} v{type(self.projection).version}: "
            f"{len(self.steps)} events, {len(self.rows.rows)} rows>"
        )

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + str(self.frame.to_html(max_rows=30))


def _describe(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {show_value(before.get(k))} → {show_value(after.get(k))}" for k in keys)


def _rows_frame(rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "key"
    return frame.sort_index()


def _events(events: Iterable[StoredEvent] | pd.DataFrame) -> list[StoredEvent]:
    if isinstance(events, pd.DataFrame):
        events = events_from_frame(events)
    return sorted(events, key=lambda e: (e.position is None, e.position or 0))


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return value.item()
    return value


def _event_id(value: Any) -> Any:
    """A frame holds event ids as text; events use UUIDs where the text is one."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def _split_column(path: str) -> list[str]:
    """``a.b\\.c`` as ``["a", "b.c"]``: the column names events_frame builds, unescaped."""
    if "\\" not in path:
        return path.split(".")
    parts, current, chars = [], [], iter(path)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = _split_column(path)
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def events_from_frame(frame: pd.DataFrame) -> list[StoredEvent]:
    """The events of an :func:`~eventlab.workbench.events_frame` back as records (its
    ``payload.*`` and ``metadata.*`` columns nested again).

    A frame holds one column per field of any event, so a field that is null in a row is taken
    as absent there; where payloads carry nulls on purpose, pass the events themselves.
    """
    required = {"event_id", "event_type", "aggregate_id", "aggregate_type", "version"}
    missing = required - set(frame.columns)
    if missing:
        raise ConfigurationError(
            f"not a frame of events (no {', '.join(sorted(missing))}): use events_frame(...)"
        )
    payload_columns = [c for c in frame.columns if c.startswith("payload.")]
    metadata_columns = [c for c in frame.columns if c.startswith("metadata.")]
    events = []
    for row in frame.to_dict("records"):
        payload = {c[8:]: _plain(row[c]) for c in payload_columns}
        metadata = {c[9:]: _plain(row[c]) for c in metadata_columns}
        events.append(
            StoredEvent(
                event_id=_event_id(row["event_id"]),
                event_type=str(row["event_type"]),
                aggregate_id=str(row["aggregate_id"]),
                aggregate_type=str(row["aggregate_type"]),
                version=int(row["version"]),
                payload=_unflatten({k: v for k, v in payload.items() if v is not None}),
                metadata=_unflatten({k: v for k, v in metadata.items() if v is not None}),
                occurred_at=_plain(row.get("occurred_at")),
                position=_plain(row.get("position")),
                recorded_at=_plain(row.get("recorded_at")),
                schema_version=int(_plain(row.get("schema_version")) or 1),
            )
        )
    return events


def _run_in_memory(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends (handlers that await only :class:`MemoryRows`)
    to its end without an event loop, so the same call works in a script and in a notebook
    cell whose loop is already running."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coroutine.close()
    raise ConfigurationError(
        "a projection handler awaited something other than its rows (I/O, a sleep): "
        "in memory, handlers may only await rows.get()"
    )


class _TrackingRows(MemoryRows):
    """Memory rows that remember, per step, each touched row as it was before the step."""

    def __init__(self) -> None:
        super().__init__()
        self.touched: dict[str, dict[str, Any] | None] = {}

    def put(self, key: str, row: dict[str, Any]) -> None:
        self._touch(str(key))
        super().put(key, row)

    def delete(self, key: str) -> None:
        self._touch(str(key))
        super().delete(key)

    def _touch(self, key: str) -> None:
        if key not in self.touched:
            self.touched[key] = copy.deepcopy(self.rows.get(key))


async def _replay(
    projection: Projection,
    events: Iterable[StoredEvent] | pd.DataFrame,
    progress: bool | None = None,
) -> ProjectionTrace:
    check_projection(projection)
    rows = _TrackingRows()
    steps: list[ProjectionStep] = []
    ordered = _events(events)
    with progress_bar(len(ordered), progress, f"replaying {type(projection).name}") as bar:
        for number, event in enumerate(ordered, start=1):
            bar.update(1)
            rows.touched = {}
            if not await projection.apply(rows, event):
                continue
            changed = {
                key: (before, rows.rows.get(key))
                for key, before in rows.touched.items()
                if before != rows.rows.get(key)
            }
            steps.append(
                ProjectionStep(
                    number, event.position, event.event_type, event.aggregate_id, changed
                )
            )
    return ProjectionTrace(projection, steps, rows)


def replay_projection(
    projection: Projection,
    events: Iterable[StoredEvent] | pd.DataFrame,
    *,
    progress: bool | None = None,
) -> ProjectionTrace:
    """Run ``projection`` over ``events`` (records, or a frame from ``events_frame``) in
    memory, in position order, step by step.

    Synchronous, in a script and in a notebook cell alike: the handlers only touch memory here.
    """
    return _run_in_memory(_replay(projection, events, progress))


def diff_projections(
    before: Projection, after: Projection, events: Iterable[StoredEvent] | pd.DataFrame
) -> pd.DataFrame:
    """Run two versions of a projection over the same events and list the read-model rows that
    differ: one line per (key, field) with both values; a row only one side has is field
    ``(row)``. Empty: the change does not alter the read model for these events."""
    events = _events(events)
    left = replay_projection(before, events).rows.rows
    right = replay_projection(after, events).rows.rows
    records = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if a == b:
            continue
        if a is None or b is None:
            records.append({"key": key, "field": "(row)", "before": a, "after": b})
            continue
        for field in sorted(set(a) | set(b)):
            if a.get(field) != b.get(field):
                records.append(
                    {"key": key, "field": field, "before": a.get(field), "after": b.get(field)}
                )
    return pd.DataFrame(records, columns=["key", "field", "before", "after"])
