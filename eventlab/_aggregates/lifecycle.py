"""Stream lifecycle over the ports: delete (soft or permanent), truncate, retention, and the
scavenge that removes what they allow (docs/lifecycle.md).

The service is written once; a backend provides only :class:`LifecycleStorage` (where stream
metadata lives, and how an event is replaced by a tombstone). The race between a delete and an
append is the append's own: a delete *is* an append (of a marker event, at the expected
version, in a unit of work that also records the metadata), so the unique
``(aggregate_id, version)`` key lets exactly one of them commit, on every backend and strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from .._core.checks import normalize_expected
from .._core.errors import ConfigurationError
from .._core.lifecycle import (
    ScavengeReport,
    StreamMetadata,
    appending_a_marker,
    check_batch_size,
    check_max_age,
    check_max_count,
    check_reason,
    check_stream,
    check_truncation,
    check_version,
    deletion_marker,
    unless_permanent,
)
from .._core.records import ExpectedVersion, StoredEvent
from ..ports import EventStore, SnapshotStore, UnitOfWork
from .lifecycle_storage import LifecycleStorage
from .scavenge import Scavenger

DEFAULT_AGGREGATE_TYPE = "eventlab.Stream"
"""The aggregate type of a deletion marker on a stream that holds no event."""


class StreamLifecycleService:
    """Deleting, truncating and capping one store's streams, and scavenging what that allows
    (``store.lifecycle()``): the :class:`~eventlab.ports.StreamLifecycle` port.

    :param store: the event store whose streams these are.
    :param storage: the backend's metadata and tombstones.
    :param snapshots: where the store's aggregates keep snapshots (default: its backend's), so
        that a snapshot built from removed events is deleted, never left stale.
    """

    def __init__(
        self,
        store: EventStore,
        storage: LifecycleStorage,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        if snapshots is not None and not all(
            callable(getattr(snapshots, name, None)) for name in ("get", "delete")
        ):
            raise ConfigurationError(f"snapshots must be a SnapshotStore, got {snapshots!r:.80}")
        self._store = store
        self._storage = storage
        self._snapshots = snapshots if snapshots is not None else store.backend.snapshots()

    async def metadata(self, aggregate_id: str) -> StreamMetadata:
        """The stream's metadata (all unset for a stream never given any)."""
        aggregate_id = check_stream(aggregate_id)
        found = await self._storage.metadata(aggregate_id)
        return found if found is not None else StreamMetadata(aggregate_id)

    async def delete(
        self,
        aggregate_id: str,
        expected_version: int | ExpectedVersion,
        *,
        permanent: bool = False,
        reason: str | None = None,
    ) -> StoredEvent:
        """Delete the stream if it is at ``expected_version``: its marker event is appended at
        the next version, and the stream's snapshot deleted.

        Soft (the default): reads return nothing; an append at the marker's version continues
        the stream (reads then start after the marker). ``permanent``: reads and appends raise
        :class:`~eventlab.StreamDeletedError` from then on. Either way its events become
        removable by :meth:`scavenge`. A delete and an append at the same expected version:
        exactly one commits (the other is a :class:`~eventlab.ConcurrencyError`).

        :returns: the marker event as stored (its type is ``STREAM_DELETED`` or
            ``STREAM_DELETED_PERMANENTLY``; followers and projections see it in the log).
        """
        aggregate_id = check_stream(aggregate_id)
        expected = normalize_expected(expected_version)
        if not isinstance(permanent, bool):
            raise ConfigurationError(f"permanent must be a bool, got {type(permanent).__name__}")
        kind = await self._storage.aggregate_type(aggregate_id) or DEFAULT_AGGREGATE_TYPE
        marker = deletion_marker(
            aggregate_id, kind, permanent=permanent, reason=check_reason(reason)
        )

        async def work(uow: UnitOfWork) -> StoredEvent:
            metadata = await self._unless_permanent(aggregate_id, uow)
            with appending_a_marker():
                (stored,) = await self._store.append(aggregate_id, [marker], expected, uow=uow)
            floor = metadata.truncate_before if permanent else stored.version + 1
            deleted = replace(
                metadata,
                deleted="permanent" if permanent else "soft",
                deleted_version=stored.version,
                truncate_before=max(metadata.truncate_before, floor),
            )
            await self._storage.save(deleted, uow)
            return stored

        stored: StoredEvent = await self._store.backend.run(work)
        # After the commit, not in it (the snapshot port takes no unit of work): a process
        # that dies here leaves a snapshot a read of the stream never combines with anything
        # (reads start after the marker), and the next scavenge deletes it.
        await self._snapshots.delete(aggregate_id)
        return stored

    async def truncate(self, aggregate_id: str, before_version: int) -> StreamMetadata:
        """Hide the versions below ``before_version`` from reads (they start there) and make
        them removable by :meth:`scavenge`; a snapshot older than ``before_version - 1`` is
        deleted. Truncation only moves forward (removed events cannot come back), and at most
        to the stream's next version."""
        aggregate_id = check_stream(aggregate_id)
        before = check_version(before_version, "before_version")

        async def work(uow: UnitOfWork) -> StreamMetadata:
            metadata = await self._unless_permanent(aggregate_id, uow)
            current = await self._store.get_current_version(aggregate_id, uow=uow)
            check_truncation(aggregate_id, before, current)
            truncated = replace(metadata, truncate_before=max(metadata.truncate_before, before))
            if truncated != metadata:
                await self._storage.save(truncated, uow)
            return truncated

        truncated: StreamMetadata = await self._store.backend.run(work)
        snapshot = await self._snapshots.get(aggregate_id)
        if snapshot is not None and snapshot.version < truncated.truncate_before - 1:
            await self._snapshots.delete(aggregate_id)
        return truncated

    async def set_retention(
        self,
        aggregate_id: str,
        *,
        max_count: int | None = None,
        max_age: timedelta | float | None = None,
    ) -> StreamMetadata:
        """Keep only the last ``max_count`` versions and the events recorded within
        ``max_age`` (a :class:`timedelta` or seconds); ``None`` lifts that rule. Reads apply
        it at once, :meth:`scavenge` removes what it hides."""
        aggregate_id = check_stream(aggregate_id)
        count = check_max_count(max_count)
        age = check_max_age(max_age)

        async def work(uow: UnitOfWork) -> StreamMetadata:
            metadata = await self._unless_permanent(aggregate_id, uow)
            kept = replace(metadata, max_count=count, max_age=age)
            await self._storage.save(kept, uow)
            return kept

        kept: StreamMetadata = await self._store.backend.run(work)
        return kept

    async def scavenge(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = 1000,
        now: datetime | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ScavengeReport:
        """Replace every event that truncation, retention or deletion allows removing by a
        tombstone at its position (followers report it as a gap), and delete the snapshots
        built from removed events. Each event is replaced on its own, idempotently: an
        interrupted scavenge leaves events removed or not, never half, and a rerun completes it.

        :param dry_run: count what would be removed; write nothing.
        :param batch_size: versions examined (and events replaced) per round trip.
        :param now: the time max_age counts back from (default: now).
        :param on_batch: told how many events each batch removed.
        """
        if not isinstance(dry_run, bool):
            raise ConfigurationError(f"dry_run must be a bool, got {type(dry_run).__name__}")
        if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
            raise ConfigurationError(f"now must be an aware datetime, got {now!r:.60}")
        if on_batch is not None and not callable(on_batch):
            raise ConfigurationError(f"on_batch must be callable, got {on_batch!r:.60}")
        scavenger = Scavenger(
            self._store,
            self._storage,
            self._snapshots,
            batch_size=check_batch_size(batch_size),
            on_batch=on_batch,
        )
        return await scavenger.run(dry_run=dry_run, now=now)

    async def _unless_permanent(self, aggregate_id: str, uow: UnitOfWork) -> StreamMetadata:
        return unless_permanent(aggregate_id, await self._storage.metadata(aggregate_id, uow))
