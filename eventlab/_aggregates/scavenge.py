"""The scavenge: every stream with a lifecycle policy, page by page, its removable events
replaced by tombstones, then its stale snapshot deleted (docs/lifecycle.md, "Scavenge").

Why it needs no transaction: each replacement is one atomic write of one document, which a
rerun skips (it only looks at events that are not tombstones yet), and what it removes is
already hidden from reads by the metadata that allowed it. A scavenge killed half-way leaves
some of its events removed and the others in place, and the next one finishes the job.

Archived events (docs/archive.md) are examined too: one the live collection holds nothing for
is removed by writing its tombstone at its position, which every read through the archive
lets win over the archive's copy (the files never change).

Copies of the log (the frame cache, docs/frames.md) are told: before its first replacement
a run marks the store as being rewritten (:meth:`LifecycleStorage.begin_rewrite`), and
after its last it clears the mark and moves the store's rewrite generation on
(:meth:`LifecycleStorage.end_rewrite`). A copy made before, or during, a run is never taken
for a copy of the log after it; a run killed half-way leaves the mark, until a later run
completes (clearing the marks it found when it started).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .._core.domain import utc_now
from .._core.lifecycle import ScavengeReport, StreamMetadata, removable
from ..ports import EventStore, SnapshotStore
from .lifecycle_storage import LifecycleStorage

_POLICIES_PAGE = 100


class Scavenger:
    """One run of a scavenge over a store's streams."""

    def __init__(
        self,
        store: EventStore,
        storage: LifecycleStorage,
        snapshots: SnapshotStore,
        *,
        batch_size: int,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        self._store = store
        self._storage = storage
        self._snapshots = snapshots
        self._batch_size = batch_size
        self._on_batch = on_batch
        self._rewrite: tuple[Any] | None = None
        """The token of this run's rewrite mark, once it has one."""

    async def run(self, *, dry_run: bool, now: datetime | None) -> ScavengeReport:
        self._rewrite = None
        left = [] if dry_run else await self._storage.rewrite_marks()
        try:
            report = await self._run(dry_run=dry_run, now=now)
        finally:
            # After an error too: what was written is written, and copies must know it.
            if self._rewrite is not None:
                await self._storage.end_rewrite(self._rewrite[0])
        if left and self._rewrite is None:
            # A run killed after its last replacement left its mark, and this one found
            # nothing more to remove: it has done that run's work again.
            await self._storage.clear_rewrite_marks(left)
        return report

    async def _run(self, *, dry_run: bool, now: datetime | None) -> ScavengeReport:
        report = ScavengeReport(dry_run=dry_run)
        after = ""
        while True:
            page = await self._storage.policies(after, _POLICIES_PAGE)
            if not page:
                return report
            for metadata in page:
                if metadata.has_policy:
                    # Time is taken per stream: a long scavenge removes what is due when it
                    # gets there.
                    moment = now if now is not None else utc_now()
                    report = await self._stream(metadata, report, dry_run=dry_run, now=moment)
            after = page[-1].aggregate_id

    async def _stream(
        self, metadata: StreamMetadata, report: ScavengeReport, *, dry_run: bool, now: datetime
    ) -> ScavengeReport:
        aggregate_id = metadata.aggregate_id
        current = await self._store.get_current_version(aggregate_id)
        floor = metadata.floor(current)
        # Below the floor everything goes; the age rule and a permanent deletion reach further.
        reach = current if metadata.max_age or metadata.deleted == "permanent" else floor - 1
        removed, highest = 0, 0
        archived = await self._storage.archived(aggregate_id, 0, reach)
        low = 0
        while low < reach:
            high = min(low + self._batch_size, reach)
            doomed = [
                d
                for d in await self._page(aggregate_id, low, high, archived)
                if removable(metadata, d, current, now)
            ]
            if doomed:
                if not dry_run and self._rewrite is None:
                    self._rewrite = (await self._storage.begin_rewrite(),)
                count = len(doomed) if dry_run else await self._storage.replace(doomed)
                removed += count
                highest = max(highest, max(d["version"] for d in doomed))
                if self._on_batch is not None and not dry_run:
                    self._on_batch(count)
            low = high
        stale = await self._stale_snapshot(metadata, floor, highest)
        if stale and not dry_run:
            await self._snapshots.delete(aggregate_id)
        return report.merged(aggregate_id, removed, stale)

    async def _page(
        self, aggregate_id: str, low: int, high: int, archived: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The stream's events with ``low < version <= high``: its live ones (and, where the
        archive holds some of these versions, its tombstones), and the archived ones that
        nothing live covers (a live copy or a tombstone wins over the archive's)."""
        held = [d for d in archived if low < int(d["version"]) <= high]
        documents = await self._storage.documents(aggregate_id, low, high, tombstones=bool(held))
        live = {int(d["version"]) for d in documents}
        return [*documents, *(d for d in held if int(d["version"]) not in live)]

    async def _stale_snapshot(self, metadata: StreamMetadata, floor: int, highest: int) -> bool:
        """Whether the stream's snapshot was built from events now hidden or removed."""
        snapshot = await self._snapshots.get(metadata.aggregate_id)
        if snapshot is None:
            return False
        if metadata.deleted == "permanent":
            return True
        return snapshot.version < max(floor - 1, highest)
