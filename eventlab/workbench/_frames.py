"""Events as pandas DataFrames: from records, from a store, through a local cache."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, overload

import pandas as pd
import pyarrow as pa

from .._core.errors import ConfigurationError
from .._core.event_codec import from_document
from .._core.progress import progress_bar
from .._core.records import StoredEvent
from ..ports import DocumentLog, EventStore, LogHead
from ._frame_build import ENVELOPE_COLUMNS, FrameBuilder
from ._frame_cache import FrameCache
from ._frame_query import FrameQuery, apply_arrow
from ._frame_read import document_pages, followed_pages
from ._personal import open_frame, personal_of

if TYPE_CHECKING:
    import polars as pl

__all__ = ["ENVELOPE_COLUMNS", "events_frame", "read_frame"]


def events_frame(
    source: Iterable[StoredEvent | Mapping[str, Any]],
    *,
    flatten: bool = True,
    numeric: bool = False,
) -> pd.DataFrame:
    """One row per event of ``source``, an iterable of :class:`StoredEvent` records or raw event
    documents (``load_jsonl(...)``, ``await store.read_all().to_list()``): envelope columns, then
    ``metadata.*`` and ``payload.*`` columns. Always synchronous; for a store, ``await
    read_frame(store)``.

    :param flatten: nested payload fields become dotted columns (``payload.address.city``); a
        key that itself contains a dot is escaped (``payload.a\\.b``), so ``{"a": {"b": 1}}``
        and ``{"a.b": 2}`` never share a column. ``False``: ``payload`` and ``metadata``
        columns hold the dicts.
    :param numeric: decimal columns become ``float64`` (not exact: leave it off for money you
        sum exactly).

    Types: nullable ``Int64`` for integers, ``category`` for type names, tz-aware UTC
    datetimes, ``str`` for strings, exact decimals (Arrow ``decimal128(18, scale)``, so that
    ``price * quantity`` works; ``decimal128(38, scale)`` for longer values: docs/frames.md,
    "Decimals"); a field whose values are of several kinds, or lists, stays a column of Python
    objects. Rows in position order.
    """
    if isinstance(source, str | bytes | Mapping) or not isinstance(source, Iterable):
        raise ConfigurationError(
            "events_frame needs an iterable of events (for a store: "
            f"`await read_frame(store)`), got {type(source).__name__}"
        )
    builder = FrameBuilder(flatten=flatten)
    builder.add(_document(item) for item in source)
    return _finish(builder.frame(), numeric)


@overload
async def read_frame(
    store: EventStore,
    *,
    streams: str | Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    aggregate_types: Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    time: str = "recorded_at",
    after: int | None = None,
    through: int | None = None,
    last: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
    backend: Literal["pandas"] = "pandas",
) -> pd.DataFrame: ...


@overload
async def read_frame(
    store: EventStore,
    *,
    streams: str | Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    aggregate_types: Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    time: str = "recorded_at",
    after: int | None = None,
    through: int | None = None,
    last: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
    backend: Literal["polars"],
) -> pl.DataFrame: ...


async def read_frame(
    store: EventStore,
    *,
    streams: str | Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    aggregate_types: Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    time: str = "recorded_at",
    after: int | None = None,
    through: int | None = None,
    last: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    flatten: bool = True,
    numeric: bool = False,
    progress: bool | None = None,
    backend: Literal["pandas", "polars"] = "pandas",
) -> pd.DataFrame | pl.DataFrame:
    """The events of a store (any :class:`~eventlab.ports.EventStore`) as a DataFrame, up to
    the head of its log as it was when the read started (``frame = await read_frame(store)``).

    Filters, pushed to the server (each served by an index where the store has one:
    docs/frames.md): ``streams`` (ids), ``event_types``, ``aggregate_types``, a time range
    ``since <= t < until`` on ``time`` (``"recorded_at"`` or ``"occurred_at"``: tz-aware
    datetimes, or ISO text, UTC without an offset), positions ``after < position <=
    through``, and the ``last`` N events selected. An empty list of names is refused (``None``
    is no filter); a bound finer than a millisecond is rounded up to the next one (stored times
    are whole milliseconds: the same events are selected).

    :param cache: a directory keeping a local Parquet copy of the whole log: the next call reads
        only the events after it (filters then apply to the copy).
    :param progress: a ``tqdm`` bar (default: for more than 50,000 events) and, with a cache,
        one line saying what was read from where.
    :param backend: ``"pandas"``, or ``"polars"`` for a Polars DataFrame made from the same
        Arrow columns without a copy (Polars installed: ``eventlab[analytics]``); columns of
        values Arrow cannot type are Extended JSON text there.
    Other options are :func:`events_frame`'s.
    """
    if not (hasattr(store, "log") and hasattr(store, "read_stream")):
        raise ConfigurationError(
            f"read_frame reads an event store, got {type(store).__name__}: "
            "for records, use events_frame(events)"
        )
    if backend not in ("pandas", "polars"):
        raise ConfigurationError(f"backend must be 'pandas' or 'polars', got {backend!r}")
    query = FrameQuery.of(
        streams=streams,
        event_types=event_types,
        aggregate_types=aggregate_types,
        since=since,
        until=until,
        time=time,
        after=after,
        through=through,
        last=last,
    )
    if backend == "polars":
        _polars()  # before anything is read
    if cache is not None:
        if not flatten:
            raise ConfigurationError("a cached frame is flattened: leave flatten=True")
        builder = await _through_cache(store, FrameCache(cache, _store_name(store)), progress)
        return await _opened(_result(builder, query, backend, numeric, select=True), store)
    head = await store.log.head()
    bound = head.position if query.through is None else min(query.through, head.position)
    builder = FrameBuilder(flatten=flatten)
    settled = await _read_into(builder, store, query, head, bound, progress)
    frame = _result(builder, query, backend, numeric, select=not (settled and _pushed_down(store)))
    return await _opened(frame, store)


async def _opened(
    frame: pd.DataFrame | pl.DataFrame, store: EventStore
) -> pd.DataFrame | pl.DataFrame:
    """The frame with its personal values opened (module ``_personal``): a cache and the
    pages it was built from hold them sealed."""
    personal = personal_of(store)
    if personal is None:
        return frame
    if isinstance(frame, pd.DataFrame):
        return await open_frame(frame, personal)
    pandas_frame = await open_frame(frame.to_pandas(), personal, typed_nulls=True)
    opened: pl.DataFrame = _polars().from_pandas(pandas_frame)
    return opened


def _result(
    builder: FrameBuilder, query: FrameQuery, backend: str, numeric: bool, *, select: bool
) -> pd.DataFrame | pl.DataFrame:
    """The frame in the backend asked for; ``select``: the query applied here (what the
    server did not select)."""
    if backend == "polars":
        table = builder.arrow()
        if select:
            table = apply_arrow(query, table)
            if not table.num_rows:  # the columns of a frame of nothing, as a read of nothing
                table = table.select(FrameBuilder().arrow().column_names)
        if numeric:
            table = pa.table(
                [c.cast(pa.float64()) if pa.types.is_decimal(c.type) else c for c in table.columns],
                names=table.column_names,
            )
        frame: pl.DataFrame = _polars().from_arrow(table)
        return frame
    pandas_frame = builder.frame()
    if select:
        pandas_frame = query.apply(pandas_frame)
        if pandas_frame.empty:  # the columns of a frame of nothing, as a read of nothing
            pandas_frame = pandas_frame[list(FrameBuilder().frame().columns)]
    return _finish(pandas_frame, numeric)


def _polars() -> Any:
    try:
        import polars
    except ImportError as exc:
        raise ConfigurationError(
            "backend='polars' needs Polars: pip install polars (or eventlab[analytics])"
        ) from exc
    return polars


async def _read_into(
    builder: FrameBuilder,
    store: EventStore,
    query: FrameQuery,
    head: LogHead,
    bound: int,
    progress: bool | None,
) -> bool:
    """Read the selection into ``builder``; whether it was read as a settled range (else the
    log was followed, waiting for appends still in flight below the head)."""
    settled = head.vouches_for(query.after, bound)
    # The bar's total from the position counter (one document), not a count of every event:
    # holes and filters make it an upper bound, which a progress bar can live with.
    with progress_bar(max(0, bound - query.after), progress, "reading events") as bar:
        pages = (
            document_pages(store, query, bound, bar.update)
            if settled
            else followed_pages(store, query, bar.update)
        )
        as_bson_stores = settled and isinstance(store.log, DocumentLog)
        async for page in pages:
            builder.add(page, as_bson_stores=as_bson_stores)
    return settled


async def _through_cache(
    store: EventStore, cache: FrameCache, progress: bool | None
) -> FrameBuilder:
    async with cache.locked():
        # The head is read under the lock: a cache another refresher moved on is never
        # ahead of the head this one reads up to.
        head = await store.log.head()
        # The rewrite generation is read before the events: a scavenge that starts after this
        # moves it on, and the next open reads the copy again.
        opened = cache.open(await _incarnation(store), head.position, await _rewritten(store))
        builder = FrameBuilder()
        for table, objects in opened.tables:
            builder.add_table(table, objects)
        manifest = opened.manifest
        fresh = FrameBuilder()
        await _read_into(
            fresh, store, FrameQuery(after=manifest.through), head, head.position, progress
        )
        # Followed or settled, every position up to the head is decided now; a follower
        # reads past the head it started from, and what it read beyond it is left to the
        # next refresh.
        table, objects = fresh.settled_part(head.position)
        cache.append(manifest, table, objects, head.position)
    builder.add_table(table, objects)
    say(progress, _cache_line(cache, opened.rows, manifest.through, opened.rebuilt, table, head))
    return builder


def _cache_line(
    cache: FrameCache,
    kept: int,
    through: int,
    rebuilt: str | None,
    table: pa.Table,
    head: LogHead,
) -> str:
    """What the cache did, in one line: what it kept, what it rebuilt and why, what it read."""
    read = f"read {table.num_rows:,} new from the store" + (
        f" (positions {through + 1:,}-{head.position:,})" if table.num_rows else ""
    )
    kept_text = f"{kept:,} events through position {through:,}"
    if rebuilt is None:
        return f"cache {cache.directory}: {kept_text}; {read}"
    if through == 0:
        return f"cache {cache.directory}: {rebuilt}: rebuilt whole; {read}"
    return f"cache {cache.directory}: {rebuilt}: kept {kept_text}, rebuilt the rest; {read}"


async def _incarnation(store: EventStore) -> str:
    """The store's incarnation; a log that has none is known by this process's object."""
    log = store.log
    if isinstance(log, DocumentLog):
        return await log.incarnation()
    return f"{type(log).__name__}:{id(log)}"


async def _rewritten(store: EventStore) -> str:
    """The store's rewrite generation (``MongoLog.rewritten``): moved on by a scavenge that
    removes events; ``"0"`` for a log that has none."""
    rewritten = getattr(store.log, "rewritten", None)
    if not callable(rewritten):
        return "0"
    return str(await rewritten())


def _pushed_down(store: EventStore) -> bool:
    """Whether the server made the whole selection (on MongoDB; the log port takes only the
    type filters)."""
    return isinstance(store.log, DocumentLog)


def say(progress: bool | None, line: str) -> None:
    if progress is not False:
        print(line)


def _store_name(store: EventStore) -> str:
    events = getattr(store, "events", None)
    if events is not None:
        return f"{events.database.name}.{events.name}"
    return f"{type(store).__name__}:{id(store)}"


def _finish(frame: pd.DataFrame, numeric: bool) -> pd.DataFrame:
    if numeric:
        for name in frame.columns:
            dtype = frame[name].dtype
            if isinstance(dtype, pd.ArrowDtype) and pa.types.is_decimal(dtype.pyarrow_dtype):
                frame[name] = frame[name].astype("float64")
    return frame


def _document(item: Any) -> dict[str, Any]:
    if isinstance(item, StoredEvent):
        document: dict[str, Any] = {
            "_id": item.event_id,
            "position": item.position,
            "aggregate_id": item.aggregate_id,
            "aggregate_type": item.aggregate_type,
            "version": item.version,
            "event_type": item.event_type,
            "schema_version": item.schema_version,
            "occurred_at": item.occurred_at,
            "recorded_at": item.recorded_at,
            "payload": item.payload,
            "metadata": item.metadata,
        }
        if item.tags:
            document["tags"] = list(item.tags)
        return document
    if isinstance(item, Mapping) and "_id" in item:
        return _document(from_document(dict(item)))
    raise ConfigurationError(f"not an event: {type(item).__name__}")
