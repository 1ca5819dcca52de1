"""Events as pandas DataFrames."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

from .._errors import ConfigurationError
from .._event_codec import from_document
from .._follow import CatchUpSubscription
from .._progress import progress_bar
from .._records import StoredEvent
from ..ports import EventStore

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
    source: Iterable[StoredEvent | Mapping[str, Any]],
    *,
    aggregate_id: str | None = None,
    event_types: Iterable[str] | None = None,
    from_position: int | None = None,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """One row per event of ``source``, an iterable of :class:`StoredEvent` records or raw event
    documents (``load_jsonl(...)``, ``await store.read_all().to_list()``): envelope columns, then
    ``metadata.*`` and ``payload.*`` columns. Always synchronous; for a store, ``await
    read_frame(store)``.

    :param flatten: nested payload fields become dotted columns (``payload.address.city``); a
        key that itself contains a dot is escaped (``payload.a\\.b``), so ``{"a": {"b": 1}}``
        and ``{"a.b": 2}`` never share a column. ``False``: ``payload`` and ``metadata``
        columns hold the dicts.
    :param numeric: payload and metadata columns whose values are all numbers get a numeric
        dtype: ints ``Int64``, decimals and floats ``float64`` (Decimal to float is not exact:
        leave it off for money you sum exactly).
    :param progress: a ``tqdm`` bar (default: for more than 50,000 events).

    Types: nullable ``Int64`` for position/version, ``category`` for type names, tz-aware UTC
    datetimes.
    """
    if isinstance(source, str | bytes | Mapping) or not isinstance(source, Iterable):
        raise ConfigurationError(
            "events_frame needs an iterable of events (for a store: "
            f"`await read_frame(store)`), got {type(source).__name__}"
        )
    types = None if event_types is None else set(event_types)
    items = [item if type(item) is StoredEvent else _as_event(item) for item in source]
    return frame_of(
        _select(items, aggregate_id, types, from_position),
        flatten=flatten,
        numeric=numeric,
        progress=progress,
    )


async def read_frame(
    store: EventStore,
    *,
    aggregate_id: str | None = None,
    event_types: Iterable[str] | None = None,
    from_position: int | None = None,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """The events of a store (any :class:`~eventlab.ports.EventStore`) as a DataFrame
    (``frame = await read_frame(store)``): the log in position order by bounded ranges, up to
    its head as it was when the read started, or one stream with ``aggregate_id``. The options
    are :func:`events_frame`'s."""
    if not (hasattr(store, "log") and hasattr(store, "read_stream")):
        raise ConfigurationError(
            f"read_frame reads an event store, got {type(store).__name__}: "
            "for records, use events_frame(events)"
        )
    types = None if event_types is None else set(event_types)
    if aggregate_id is not None:
        events = _select(await store.read_stream(aggregate_id), None, types, from_position)
    else:
        stream = CatchUpSubscription(
            store.log, start=from_position or 0, page_size=5000, event_types=types, live=False
        )
        # The bar's total from the position counter (one document), not a count of every event:
        # holes make it an upper bound, which a progress bar can live with.
        total = (await store.log.head()).position if progress is not False else 0
        with progress_bar(total, progress, "reading events") as bar:
            events = []
            async for event in stream:
                events.append(event)
                bar.update(1)
    return frame_of(events, flatten=flatten, numeric=numeric, progress=False)


def _select(
    events: list[StoredEvent],
    aggregate_id: str | None,
    types: set[str] | None,
    from_position: int | None,
) -> list[StoredEvent]:
    if aggregate_id is None and types is None and from_position is None:
        return events
    return [
        e
        for e in events
        if (aggregate_id is None or e.aggregate_id == aggregate_id)
        and (types is None or e.event_type in types)
        and (from_position is None or (e.position is not None and e.position > from_position))
    ]


def _as_event(item: Any) -> StoredEvent:
    if isinstance(item, StoredEvent):
        return item
    if isinstance(item, Mapping) and "_id" in item:
        return from_document(dict(item))
    raise ConfigurationError(f"not an event: {type(item).__name__}")


def _flatten_into(
    columns: dict[str, list[Any]],
    names: dict[str, dict[str, str]],
    prefix: str,
    value: dict[str, Any],
    row: int,
    n: int,
) -> None:
    # Dotted column names are built once per (prefix, key), not once per event.
    known = names.get(prefix)
    if known is None:
        known = names[prefix] = {}
    for key, item in value.items():
        name = known.get(key)
        if name is None:
            # A dot inside a key is escaped, so that {"a": {"b": 1}} and {"a.b": 2} never
            # share a column (events_from_frame splits on unescaped dots only).
            safe = (
                key.replace("\\", "\\\\").replace(".", "\\.") if "." in key or "\\" in key else key
            )
            name = known[key] = f"{prefix}.{safe}"
        if type(item) is dict and item:
            _flatten_into(columns, names, name, item, row, n)
        else:
            column = columns.get(name)
            if column is None:
                column = columns[name] = [None] * n
            column[row] = item


def frame_of(
    events: list[StoredEvent],
    *,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """The DataFrame of a list of events (see :func:`events_frame`).

    Built column by column: envelope fields straight into typed arrays, payload and metadata
    flattened into per-column lists in one pass, and the frame assembled without dtype
    inference (object columns), then only the envelope columns converted. That is what makes
    it several times cheaper than ``pd.json_normalize`` (see benchmarks/).
    """
    n = len(events)
    columns: dict[str, Any] = {
        "position": _int_column([e.position for e in events]),
        "aggregate_id": [e.aggregate_id for e in events],
        "aggregate_type": pd.Categorical([e.aggregate_type for e in events]),
        "version": _int_column([e.version for e in events]),
        "event_type": pd.Categorical([e.event_type for e in events]),
        "schema_version": _int_column([e.schema_version for e in events]),
        "occurred_at": _utc_column([e.occurred_at for e in events]),
        "recorded_at": _utc_column([e.recorded_at for e in events]),
        "event_id": [e.event_id for e in events],
    }
    extra: dict[str, list[Any]] = {}
    if flatten:
        cache: dict[str, dict[str, str]] = {}
        with progress_bar(n, progress, "building the frame") as bar:
            for row, event in enumerate(events):
                if event.metadata:
                    _flatten_into(extra, cache, "metadata", event.metadata, row, n)
                _flatten_into(extra, cache, "payload", event.payload, row, n)
                if row % 1000 == 999:
                    bar.update(1000)
        names = sorted(k for k in extra if k.startswith("metadata.")) + [
            k for k in extra if k.startswith("payload.")
        ]
    else:
        extra = {"metadata": [e.metadata for e in events], "payload": [e.payload for e in events]}
        names = ["metadata", "payload"]
    # Object columns are taken as they are; letting pandas infer a dtype for every payload
    # column (strings in particular) costs more than the whole rest of the build.
    objects = pd.DataFrame(
        {
            "aggregate_id": columns.pop("aggregate_id"),
            "event_id": columns.pop("event_id"),
            **{k: extra[k] for k in names},
        },
        dtype=object,
    )
    objects["aggregate_id"] = objects["aggregate_id"].astype("str")
    typed = pd.DataFrame(columns)
    frame = pd.concat([typed, objects], axis=1)[[*ENVELOPE_COLUMNS, *names]]
    if numeric and flatten:
        for name in names:
            converted = _numeric_column(frame[name])
            if converted is not None:
                frame[name] = converted
    return frame


def _numeric_column(column: pd.Series) -> Any:
    """``Int64`` for a column of ints, ``float64`` for numbers with decimals or floats; ``None``
    when any value is not a number (bools are not numbers here)."""
    values = column.dropna()
    if values.empty:
        return None
    kinds = {type(v) for v in values}
    if kinds <= {int}:
        return pd.array(column.tolist(), dtype="Int64")
    if kinds <= {int, float, Decimal}:
        return pd.to_numeric(column.map(lambda v: None if v is None else float(v)), errors="raise")
    return None


def _int_column(values: list[int | None]) -> Any:
    import numpy as np

    if None not in values:
        return pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")
    return pd.array(values, dtype="Int64")


def _utc_column(values: list[Any]) -> Any:
    return pd.to_datetime(values, utc=True)
