"""Reading what a frame selects, as stored documents, at the speed of the wire.

On MongoDB a frame reads the events collection directly (the log's read concern, tombstones
left out here):

* **the whole log**: one scan in the collection's own order, the next batch requested while
  this process decodes the last one (the embedded server runs on the other core), ordered
  by position here; no index walk, the cheapest way to have the server send everything;
* **the last events, or a filter no index serves**: bounded position ranges, two in flight; a
  server that does not stop an index scan at a limit never scans past a range;
* **a filter an index serves** (streams, event types, aggregate types, a time range, with the
  opt-in query indexes): one query through that index, reading only what it selects.

Any other :class:`~eventlab.ports.EventStore` is read through its log port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .._core.event_codec import stored_document
from .._core.tasks import ended
from .._follow.catch_up import CatchUpSubscription
from ..ports import DocumentLog, EventStore
from ._frame_query import FrameQuery

RANGE = 10_000
"""Positions per range: a range's documents are one reply (about 3 MB of order events)."""
IN_FLIGHT = 2

Page = list[dict[str, Any]]


async def followed_pages(
    store: EventStore, query: FrameQuery, on_range: Callable[[int], None]
) -> AsyncIterator[Page]:
    """The log followed as a catch-up subscription does, up to its head: for a store whose
    positions below the head are not all settled (``preallocated``), an append still in flight
    is waited for, or given up by the subscriptions' rule, never skipped. The caller makes the
    selection but for the type filters."""
    subscription = CatchUpSubscription(
        store.log,
        start=query.after,
        page_size=RANGE,
        event_types=query.event_types,
        aggregate_types=query.aggregate_types,
        live=False,
    )
    page: Page = []
    async for event in subscription:
        page.append(stored_document(event))
        if len(page) >= RANGE:
            on_range(len(page))
            yield page
            page = []
    on_range(len(page))
    yield page


async def document_pages(
    store: EventStore, query: FrameQuery, bound: int, on_range: Callable[[int], None]
) -> AsyncIterator[Page]:
    """The documents ``query`` selects at positions up to ``bound``, page by page (in position
    order but for the whole-log scan; ``last``: the last ones). ``on_range(n)`` is told of
    each page's progress (positions or documents)."""
    log = store.log
    if not isinstance(log, DocumentLog):
        async for page in _port_pages(store, query, bound, on_range):
            yield page
        return
    # The scan sends the whole collection: only for a read of the whole log (a refresh after
    # a cached head reads its ranges through the position index).
    if query.whole_log and query.after == 0 and query.last is None and not log.sharded:
        async for page in log.scan_documents(query.after, bound):
            on_range(len(page))
            yield page
        return
    index = await _serving_index(log, query)
    if index is not None:
        yield await _indexed(log, query, bound)
        on_range(bound - query.after)
        return
    async for page in _ranges(log, query, bound, on_range):
        yield page


async def _serving_index(log: DocumentLog, query: FrameQuery) -> str | None:
    """The index that reads only what ``query`` selects, if the store has it."""
    if query.whole_log:
        return None
    if query.streams:
        return "stream_version"  # a core index: every store has it
    names = await log.index_names()
    for wanted, name in (
        (query.event_types, "event_type_position"),
        (query.timed and query.time == "recorded_at", "recorded_at"),
        (query.timed and query.time == "occurred_at", "occurred_at"),
        (query.aggregate_types, "aggregate_type_occurred_at"),
    ):
        if wanted and name in names:
            return name
    return None


async def _indexed(log: DocumentLog, query: FrameQuery, bound: int) -> Page:
    """One query; the planner picks the index (the log returns it in position order)."""
    span = {"$gt": query.after, "$lte": bound}
    return await log.find_documents(
        {**query.server_filter(), "position": span},
        descending=query.last is not None,
        limit=query.last,
    )


async def _ranges(
    log: DocumentLog, query: FrameQuery, bound: int, on_range: Callable[[int], None]
) -> AsyncIterator[Page]:
    selection = query.server_filter()
    backwards = query.last is not None
    ranges = [(lo, min(lo + RANGE, bound)) for lo in range(query.after, bound, RANGE)]
    if backwards:
        ranges.reverse()

    def fetch(lo: int, hi: int) -> Awaitable[Page]:
        return log.find_documents({**selection, "position": {"$gt": lo, "$lte": hi}})

    found = 0
    tail: list[Page] = []
    async for (lo, hi), page in _pipelined(fetch, ranges):
        on_range(hi - lo)
        if not backwards:
            yield page
            continue
        tail.append(page)
        found += len(page)
        if query.last is not None and found >= query.last:
            break
    if backwards:
        docs = [doc for page in reversed(tail) for doc in page]
        yield docs[-query.last :] if query.last else docs


async def _pipelined(
    fetch: Callable[[int, int], Awaitable[Page]], ranges: list[tuple[int, int]]
) -> AsyncIterator[tuple[tuple[int, int], Page]]:
    """Each range's documents in order, the next ones already requested while the caller
    works on these."""
    pending: list[tuple[tuple[int, int], asyncio.Future[Page]]] = []
    upcoming = iter(ranges)
    try:
        for span in upcoming:
            pending.append((span, asyncio.ensure_future(fetch(*span))))
            if len(pending) < IN_FLIGHT:
                continue
            span, future = pending.pop(0)
            yield span, await future
        while pending:
            span, future = pending.pop(0)
            yield span, await future
    finally:
        for _, future in pending:
            future.cancel()
        for _, future in pending:
            await ended(future)


async def _port_pages(
    store: EventStore, query: FrameQuery, bound: int, on_range: Callable[[int], None]
) -> AsyncIterator[Page]:
    """Through the log port (any backend): ranges with the port's filters, the rest of the
    selection made by the caller on the frame."""
    lo = query.after
    while lo < bound:
        hi = min(lo + RANGE, bound)
        found = await store.log.read(
            lo, hi, event_types=query.event_types, aggregate_types=query.aggregate_types
        )
        on_range(found.through - lo)
        yield [stored_document(event) for event in found.events]
        lo = found.through
