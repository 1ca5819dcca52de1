"""Events as pandas DataFrames."""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from .._errors import ConfigurationError
from .._event_codec import from_document
from .._records import StoredEvent

if TYPE_CHECKING:
    from .._event_store import MongoEventStore

ENVELOPE_COLUMNS = [
    "position",
    "aggregate_id",
    "aggregate_type",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "event_id",
]
_INT_COLUMNS = ("position", "version", "schema_version")
_CATEGORY_COLUMNS = ("aggregate_type", "event_type")


def events_frame(
    source: Any,
    *,
    aggregate_id: str | None = None,
    event_types: Iterable[str] | None = None,
    from_position: int | None = None,
    flatten: bool = True,
) -> pd.DataFrame | Coroutine[Any, Any, pd.DataFrame]:
    """One row per event: envelope columns, ``metadata.*`` and ``payload.*`` columns.

    ``source`` is a :class:`MongoEventStore` (then this returns a coroutine: ``await
    events_frame(store)``), or any iterable of :class:`StoredEvent` records or raw event
    documents (then the frame is returned directly). With ``flatten=True`` nested payload
    fields become dotted columns (``payload.address.city``); with ``False`` the ``payload`` and
    ``metadata`` columns hold the dicts. Types: nullable ``Int64`` for position/version,
    ``category`` for type names, tz-aware UTC datetimes.
    """
    from .._event_store import MongoEventStore

    types = None if event_types is None else set(event_types)
    if isinstance(source, MongoEventStore):
        return _from_store(source, aggregate_id, types, from_position, flatten)
    if isinstance(source, str | bytes | Mapping) or not isinstance(source, Iterable):
        raise ConfigurationError(
            f"events_frame needs a MongoEventStore or an iterable of events, got {type(source).__name__}"
        )
    events = (_as_event(item) for item in source)
    selected = [
        e
        for e in events
        if (aggregate_id is None or e.aggregate_id == aggregate_id)
        and (types is None or e.event_type in types)
        and (from_position is None or (e.position is not None and e.position > from_position))
    ]
    return frame_of(selected, flatten=flatten)


async def _from_store(
    store: MongoEventStore,
    aggregate_id: str | None,
    types: set[str] | None,
    from_position: int | None,
    flatten: bool,
) -> pd.DataFrame:
    if aggregate_id is not None:
        events = await store.get_events(aggregate_id)
        if from_position is not None:
            events = [e for e in events if (e.position or 0) > from_position]
        if types is not None:
            events = [e for e in events if e.event_type in types]
    else:
        stream = store.get_events_from_position(
            from_position or 0, batch_size=5000, event_types=types
        )
        events = [e async for e in stream]
    return frame_of(events, flatten=flatten)


def _as_event(item: Any) -> StoredEvent:
    if isinstance(item, StoredEvent):
        return item
    if isinstance(item, Mapping) and "_id" in item:
        return from_document(dict(item))
    raise ConfigurationError(f"not an event: {type(item).__name__}")


def _flatten_into(columns: dict[str, list[Any]], prefix: str, value: Any, row: int, n: int) -> None:
    # Iterative-by-level flattening into column lists: no per-row DataFrame or json_normalize.
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if type(item) is dict and item:
            _flatten_into(columns, name, item, row, n)
        else:
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * n
            column[row] = item


def frame_of(events: list[StoredEvent], *, flatten: bool = True) -> pd.DataFrame:
    """The DataFrame of a list of events (see :func:`events_frame`)."""
    n = len(events)
    columns: dict[str, list[Any]] = {
        "position": [e.position for e in events],
        "aggregate_id": [e.aggregate_id for e in events],
        "aggregate_type": [e.aggregate_type for e in events],
        "version": [e.version for e in events],
        "event_type": [e.event_type for e in events],
        "schema_version": [e.schema_version for e in events],
        "occurred_at": [e.occurred_at for e in events],
        "recorded_at": [e.recorded_at for e in events],
        "event_id": [str(e.event_id) for e in events],
    }
    if flatten:
        extra: dict[str, list[Any]] = {}
        for row, event in enumerate(events):
            if event.metadata:
                _flatten_into(extra, "metadata", event.metadata, row, n)
            _flatten_into(extra, "payload", event.payload, row, n)
        meta = sorted(k for k in extra if k.startswith("metadata."))
        payload = [k for k in extra if k.startswith("payload.")]
        columns.update({k: extra[k] for k in meta})
        columns.update({k: extra[k] for k in payload})
    else:
        columns["metadata"] = [e.metadata for e in events]
        columns["payload"] = [e.payload for e in events]
    frame = pd.DataFrame(columns)
    for name in _INT_COLUMNS:
        frame[name] = pd.array(frame[name], dtype="Int64")
    for name in _CATEGORY_COLUMNS:
        frame[name] = frame[name].astype("category")
    for name in ("occurred_at", "recorded_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame
