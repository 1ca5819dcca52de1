"""Reading what a frame selects, page by page, through the log port.

A :class:`~eventlab.ports.DocumentLog` (MongoDB's) hands out its stored documents for the
selection, choosing how to read them (a scan, an index, position ranges); any other log is
read in ranges through :meth:`~eventlab.ports.EventLog.read` with its type filters, the rest
of the selection made by the caller on the frame. A range the log has not settled is
followed as a catch-up subscription does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from .._core.event_codec import stored_document
from .._follow.catch_up import CatchUpSubscription
from ..ports import DocumentLog, EventStore
from ._frame_query import FrameQuery

RANGE = 10_000
"""Positions per range read through the log port."""

Page = Sequence[dict[str, Any]]


def stored_log(store: EventStore) -> Any:
    """The store's log as stored: personal values left sealed (frames open them once built,
    so that the frame cache never holds them opened)."""
    sealed = getattr(store.log, "sealed", None)
    return sealed() if callable(sealed) else store.log


async def followed_pages(
    store: EventStore, query: FrameQuery, on_range: Callable[[int], None]
) -> AsyncIterator[Page]:
    """The log followed as a catch-up subscription does, up to its head: for a store whose
    positions below the head are not all settled (``preallocated``), an append still in flight
    is waited for, or given up by the subscriptions' rule, never skipped. The caller makes the
    selection but for the type filters."""
    subscription = CatchUpSubscription(
        stored_log(store),
        start=query.after,
        page_size=RANGE,
        event_types=query.event_types,
        aggregate_types=query.aggregate_types,
        live=False,
    )
    page: list[dict[str, Any]] = []
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
    """The documents ``query`` selects at positions up to ``bound`` (settled), page by page.
    ``on_range(n)`` is told of each page's progress (positions or documents)."""
    log = stored_log(store)
    if isinstance(log, DocumentLog):
        async for page in log.selected_documents(query, bound, on_range):
            yield page
        return
    lo = query.after
    while lo < bound:
        hi = min(lo + RANGE, bound)
        found = await log.read(
            lo, hi, event_types=query.event_types, aggregate_types=query.aggregate_types
        )
        on_range(found.through - lo)
        yield [stored_document(event) for event in found.events]
        lo = found.through
