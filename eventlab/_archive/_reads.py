"""Reading through an archive and the live collection as one log, written once for every
backend.

Why the marker is read where it is: a job writes the marker *before* it removes live copies,
and removes the marker only *after* it has put every event back. So a reader that reads the
live collection and then the marker sees, for any event the live read missed because it was
removed, a marker that names the archive holding it; and a reader that read the marker before
the live read sees, for any event not yet put back, the archive still named. The log reads the
marker before its live read, and after it unless the live slice accounts for every position
of its range (then nothing can be missing); one stream knows from its versions (dense, the
live ones its first and a suffix) whether anything is missing, and only then looks. An event
in both places (a job between its steps) is taken once, by position.

A live tombstone wins over the archive's copy at its position: a scavenge removes an archived
event by writing its tombstone into the live collection (the archive's files never change), so
every read through the archive leaves out what a live tombstone covers: the log (it reports the
gap), a stream (by version, live first; reads drop tombstones), a frame, a restore.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from itertools import pairwise
from typing import Any

from .._core.event_codec import from_document
from .._core.log_query import LogQuery
from .._core.records import StreamVersions
from .._core.stored_batch import positions_in
from ..ports import LogSelection, LogSlice
from ._marker import ArchiveMarker, MarkerStore
from ._view import ArchiveView, documents, open_view

Documents = list[dict[str, Any]]
Page = Sequence[dict[str, Any]]
ReadLive = Callable[[], Awaitable[Documents]]
TombstonePositions = Callable[[int, int], Awaitable[frozenset[int]]]
"""The positions ``after < p <= through`` where the live collection holds a tombstone."""


class ArchiveReader:
    """A backend's reads through its store's archive (see the module doc for the order).

    :param markers: where the backend keeps the store's archive record.
    :param tombstones: the live collection's tombstones in a range of positions (they shadow
        the archive's copies: the module doc).
    """

    def __init__(self, markers: MarkerStore, tombstones: TombstonePositions) -> None:
        self.markers = markers
        self.tombstones = tombstones

    async def view(self, marker: ArchiveMarker) -> ArchiveView:
        return await open_view(marker)

    async def stream(
        self, aggregate_id: str, versions: StreamVersions, live: Documents, read_all_live: ReadLive
    ) -> Documents:
        """The stream's documents ``versions`` selects, given what the live read found
        (``live``); ``read_all_live`` reads the live part of ``(after, to]`` whole."""
        if not _missing(live, versions):
            return live
        marker = await self.markers.get()
        if marker is None:
            # Nothing archived now: what was missing was put back meanwhile (or was never
            # there); the live collection holds it all now.
            return await _windowed(await read_all_live(), versions)
        archived = (await self.view(marker)).stream(aggregate_id, versions.after, versions.to)
        every = {int(d["version"]): d for d in archived}
        # A read without a count saw the whole live part of its range; one with a count saw
        # only a window of it, so the live part is read again whole.
        whole = live if versions.max_count is None else await read_all_live()
        every.update((int(d["version"]), d) for d in whole)
        return await _windowed([every[v] for v in sorted(every)], versions)

    async def archived_versions(
        self, aggregate_id: str, after_version: int, through_version: int
    ) -> Documents:
        """The stream's archived documents with ``after < version <= through``, oldest
        first, live copies and tombstones not looked at (``[]`` with no archive): what a
        scavenge examines besides the live ones."""
        marker = await self.markers.get()
        if marker is None or through_version <= after_version:
            return []
        view = await self.view(marker)
        return view.stream(aggregate_id, after_version, through_version)

    async def log_range(
        self, query: LogQuery, read_live: Callable[[LogQuery], Awaitable[LogSlice]]
    ) -> LogSlice:
        """The slice of the log ``query`` selects, archive and live collection together."""
        before = await self.markers.get()
        live = await read_live(query)
        if _whole(live, query):
            return live  # every position of the range is accounted for: nothing is missing
        marker = _widest(before, await self.markers.get())
        if marker is None or query.after >= marker.through or query.until <= query.after:
            return live
        top = min(live.through, marker.through)
        rows = (await self.view(marker)).between(query.after, top)
        if not rows.num_rows:
            return live
        # An unfiltered slice (or one of every position) reports the range's tombstones; a
        # filtered one leaves them out with what it does not select, so they are asked for.
        buried = set(live.abandoned)
        if query.filtered and not query.every_position:
            buried |= await self.tombstones(query.after, top)
        return _merged(live, rows, query, buried)

    async def selected(
        self,
        selection: LogSelection,
        through: int,
        live_pages: Callable[[], AsyncIterator[Page]],
    ) -> AsyncIterator[Page]:
        """A frame's pages (:meth:`~eventlab.ports.DocumentLog.selected_documents`): the live
        pages less what the archive holds, then the archive's selected documents."""
        before = await self.markers.get()
        if before is None and selection.last is None:
            # Nothing archived when the read starts: pages pass through as they come (the
            # caller works on one while the next is on its way); what an archive running
            # meanwhile removed is added at the end (the caller sorts).
            seen: set[int] = set()
            async for page in live_pages():
                seen.update(positions_in(page))
                yield page
            marker = await self.markers.get()
            if marker is not None and selection.after < marker.through:
                top = min(through, marker.through)
                archived = (await self.view(marker)).selected(selection, top)
                seen |= await self.tombstones(selection.after, top)
                rest = [d for d in archived if int(d["position"]) not in seen]
                if rest:
                    yield rest
            return
        pages = [page async for page in live_pages()]
        marker = _widest(before, await self.markers.get())
        if marker is None or selection.after >= marker.through:
            for page in pages:
                yield page
            return
        top = min(through, marker.through)
        archived = (await self.view(marker)).selected(selection, top)
        # Read after the live pages: a tombstone written since (a scavenge) leaves the
        # archive's copy out too, as the live page could not have held the event.
        buried = await self.tombstones(selection.after, top)
        archived = [d for d in archived if int(d["position"]) not in buried]
        held = {int(d["position"]) for d in archived}
        live = [d for page in pages for d in page if int(d["position"]) not in held]
        merged = sorted([*live, *archived], key=lambda d: int(d["position"]))
        if selection.last is not None:
            merged = merged[-selection.last :]
        yield merged


def _missing(live: Documents, versions: StreamVersions) -> bool:
    """Whether versions the read asked for may be archived. A stream's live versions are its
    first and a suffix (an archive keeps both), so a read may miss some where the versions it
    found skip one, where they stop below the top it asked for (the stream may end there, or
    go on live above an archived middle), or where they do not reach down to ``after + 1``."""
    if not live:
        # A stream's last event is never archived: a stream with no live event has none
        # archived either, unless the read stopped below its live part.
        return versions.to is not None or versions.max_count is not None
    found = sorted(int(d["version"]) for d in live)
    if any(upper != lower + 1 for lower, upper in pairwise(found)):
        return True
    if versions.to is not None and found[-1] < versions.to:
        return True
    counted = versions.max_count is not None and len(live) >= versions.max_count
    if not versions.backwards:
        return found[0] > versions.after + 1 or (versions.max_count is not None and not counted)
    return not counted and found[0] > versions.after + 1


async def _windowed(docs: Documents, versions: StreamVersions) -> Documents:
    """Whole-range documents (oldest first) cut to the read's window, in its order."""
    top = versions.to
    docs = [
        d
        for d in docs
        if int(d["version"]) > versions.after and (top is None or int(d["version"]) <= top)
    ]
    if versions.backwards:
        docs.reverse()
    if versions.max_count is not None:
        docs = docs[: versions.max_count]
    return docs


def _whole(live: LogSlice, query: LogQuery) -> bool:
    """Whether a live slice holds something at every position of its range (an event or a
    tombstone), so that nothing of it can be in the archive (an unfiltered read, or one that
    reports every position)."""
    span = live.through - query.after
    if live.present is not None:
        return len(live.present) == span
    return not query.filtered and len(live.events) + len(live.abandoned) == span


def _widest(one: ArchiveMarker | None, other: ArchiveMarker | None) -> ArchiveMarker | None:
    if one is None or other is None:
        return one or other
    return one if one.through >= other.through else other


def _merged(live: LogSlice, rows: Any, query: LogQuery, buried: set[int]) -> LogSlice:
    """The live slice with the archive's rows of its range added (each position once), but
    those at ``buried`` positions: a live tombstone there wins."""
    if buried:
        rows = rows.filter([p not in buried for p in rows["position"].to_pylist()])
    types = zip(rows["event_type"].to_pylist(), rows["aggregate_type"].to_pylist(), strict=True)
    positions = rows["position"].to_pylist()
    wanted = [query.wants(e, a) for e, a in types]
    selected = rows.filter(wanted) if query.filtered else rows
    known = {e.position for e in live.events}
    archived = [from_document(d) for d in documents(selected) if d["position"] not in known]
    events = sorted([*live.events, *archived], key=lambda e: e.position or 0)
    through = live.through
    looked = (
        positions
        if not query.filtered or query.every_position
        else [p for p, w in zip(positions, wanted, strict=True) if w]
    )
    if query.limit is not None:
        # The limit counts documents looked at, archived ones too: the slice ends sooner.
        occupied = sorted(set(looked) | (live.present or {e.position or 0 for e in live.events}))
        occupied.extend(live.abandoned)
        occupied = sorted(set(occupied))
        if len(occupied) > query.limit:
            through = occupied[query.limit - 1]
            events = [e for e in events if (e.position or 0) <= through]
    present = None
    if live.present is not None:
        present = frozenset(p for p in live.present | set(looked) if p <= through)
    abandoned = tuple(p for p in live.abandoned if p <= through)
    return LogSlice(events, through, present, abandoned)
