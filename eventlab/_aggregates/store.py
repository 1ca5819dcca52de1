"""Load and save event-sourced aggregates through an event store, optionally from snapshots."""

from __future__ import annotations

import logging
import weakref
from typing import Any, TypeVar

from .._core.checks import check_aggregate_id
from .._core.domain import AggregateRoot
from .._core.errors import AggregateNotFoundError, ConfigurationError, EventlabError
from .._core.records import StoredEvent
from ..ports import EventStore, Snapshot, SnapshotStore, UnitOfWork
from . import sealed_snapshots

A = TypeVar("A", bound=AggregateRoot)

logger = logging.getLogger("eventlab.snapshots")


class AggregateStore:
    """Rebuilds aggregates from their streams and saves their pending events.

    The expected version of a save is the version the aggregate was loaded at, so two
    processes that loaded the same version cannot both save: the second gets
    :class:`~eventlab.ConcurrencyError` and must reload and retry its command.

    :param snapshots: where snapshots live. With it, :meth:`load` starts from the newest usable
        snapshot and replays only the events after it, and :meth:`save` takes a snapshot when
        the aggregate's class sets ``snapshot_every`` and the save crosses a multiple of it.
    """

    def __init__(self, events: EventStore, *, snapshots: SnapshotStore | None = None) -> None:
        self.events = events
        self.snapshots = snapshots

    async def load(
        self, aggregate_class: type[A], aggregate_id: str, *, uow: UnitOfWork | None = None
    ) -> A:
        """The aggregate with every stored event applied (raises if the stream is empty)."""
        aggregate_id = check_aggregate_id(aggregate_id)
        if self.snapshots is not None:
            opened = await self._open_snapshot(
                await self.snapshots.get(aggregate_id, uow=uow), aggregate_class, uow
            )
            if opened is not None:
                loaded = await self._from_snapshot(aggregate_class, aggregate_id, opened, uow)
                if loaded is not None:
                    return loaded
        stored = await self.events.read_stream(aggregate_id, uow=uow)
        if not stored:
            raise AggregateNotFoundError(aggregate_id)
        events = self._domain(stored)
        rebuilt = aggregate_class.rebuild(aggregate_id, events)
        # Its version is the stream's, not the count of events applied: a truncated stream's
        # reads start above version 1 (docs/lifecycle.md), and a save expects the stream's.
        rebuilt.version = stored[-1].version
        sealed_snapshots.track(rebuilt, self._subjects_of(events))
        return rebuilt

    async def _from_snapshot(
        self,
        aggregate_class: type[A],
        aggregate_id: str,
        opened: tuple[Snapshot, frozenset[str]],
        uow: UnitOfWork | None,
    ) -> A | None:
        """The aggregate from its snapshot and the events after it; ``None`` when the two do
        not join (the load replays the stream instead)."""
        snapshot, subjects = opened
        stored = await self.events.read_stream(
            aggregate_id, after_version=snapshot.version, uow=uow
        )
        if stored and stored[0].version != snapshot.version + 1:
            # Reads start above the snapshot (a truncation written after it): combined, the
            # aggregate would miss the versions between.
            logger.warning(
                "snapshot of %s at version %d is below its stream's truncation: ignored",
                aggregate_id,
                snapshot.version,
            )
            return None
        after = self._domain(stored)
        current = stored[-1].version if stored else snapshot.version
        if not stored and await self.events.get_current_version(aggregate_id, uow=uow) != current:
            logger.warning(  # the stream is shorter than the snapshot: a restored store
                "snapshot of %s at version %d is past its stream: ignored",
                aggregate_id,
                snapshot.version,
            )
            return None
        aggregate = aggregate_class.from_snapshot(aggregate_id, snapshot.version, snapshot.state)
        for event in after:
            aggregate.apply(event)
        aggregate.version = current
        sealed_snapshots.track(aggregate, subjects | self._subjects_of(after))
        return aggregate

    def _domain(self, stored: list[StoredEvent]) -> list[Any]:
        to_domain = self.events.registry.to_domain
        return [to_domain(event, unknown="raise") for event in stored]

    @property
    def _personal(self) -> Any:
        return getattr(self.events, "personal", None)

    def _subjects_of(self, events: list[Any]) -> set[str]:
        if self._personal is None:
            return set()
        return sealed_snapshots.subjects_of(events)

    async def _open_snapshot(
        self, snapshot: Snapshot | None, cls: type[AggregateRoot], uow: UnitOfWork | None
    ) -> tuple[Snapshot, frozenset[str]] | None:
        """The snapshot to start from, opened, with its subjects; ``None``: replay."""
        if snapshot is None or not usable(snapshot, cls):
            return None
        if not sealed_snapshots.is_sealed_snapshot(snapshot):
            return snapshot, frozenset()
        opened = await sealed_snapshots.open_sealed(self._personal, snapshot)
        if opened is not None:
            return opened
        # A subject it holds data of was forgotten: it can never be read again.
        logger.info("snapshot of %s cannot be opened (a subject forgotten): ignored", cls.__name__)
        if uow is None and self.snapshots is not None:
            try:
                await self.snapshots.delete(snapshot.aggregate_id)
            except EventlabError as exc:  # a cache: the load replays without it
                logger.warning("unreadable snapshot not deleted: %s", exc)
        return None

    async def save(
        self,
        aggregate: AggregateRoot,
        *,
        metadata: dict[str, Any] | None = None,
        uow: UnitOfWork | None = None,
    ) -> list[StoredEvent]:
        """Append the aggregate's pending events; they stop being pending only once the
        transaction that stores them has committed.

        Without ``uow`` the save is its own transaction. With ``uow`` the events stay pending
        until that unit of work commits (its after-commit hook marks them saved), so a unit
        that is run again (``run_unit_of_work`` after a transient failure) saves them again,
        and one that fails leaves them to save later. A second save of the aggregate in the
        same unit appends only what was recorded since the first.

        A snapshot due with the save is taken in the same unit of work; there a failure of
        it is raised (the server has doomed the transaction), where on its own it is a cache
        whose failure the save survives.
        """
        pending = len(aggregate.pending_events)
        appended = _appended_in(uow, aggregate)
        unsaved = list(aggregate.pending_events[appended:])
        if not unsaved:
            return []
        before = aggregate.version - pending + appended
        stored = await self.events.append(
            aggregate.id,
            unsaved,
            expected_version=before,
            aggregate_type=type(aggregate).aggregate_type,
            metadata=metadata,
            uow=uow,
        )
        sealed_snapshots.track(aggregate, self._subjects_of(unsaved))
        if uow is None:
            aggregate._mark_saved(pending)
        else:
            _appended(uow, aggregate, pending)
        every = type(aggregate).snapshot_every
        if self.snapshots is not None and every and aggregate.version // every > before // every:
            await self._snapshot_after_save(aggregate, uow)
        return stored

    async def _snapshot_after_save(self, aggregate: AggregateRoot, uow: UnitOfWork | None) -> None:
        if uow is not None:  # in the caller's transaction: a failure there dooms it
            await self._save_snapshot(aggregate, uow)
            return
        try:
            await self._save_snapshot(aggregate, None)
        except EventlabError as exc:  # a snapshot is a cache: the save stands without it
            logger.warning("snapshot of %s not taken: %s", aggregate.id, exc)

    async def _save_snapshot(self, aggregate: AggregateRoot, uow: UnitOfWork | None) -> bool:
        """Save a snapshot of ``aggregate``, sealed with the keys of the subjects its state
        may hold data of; none at all when one of them has been forgotten."""
        assert self.snapshots is not None
        subjects = sealed_snapshots.tracked(aggregate) | self._subjects_of(
            list(aggregate.pending_events)
        )
        snapshot = await sealed_snapshots.seal(self._personal, take_snapshot(aggregate), subjects)
        if snapshot is None:
            logger.info("snapshot of %s not taken: a subject it holds was forgotten", aggregate.id)
            return False
        return await self.snapshots.save(snapshot, uow=uow)

    async def snapshot(self, aggregate: AggregateRoot, *, uow: UnitOfWork | None = None) -> bool:
        """Take a snapshot of ``aggregate`` now (on demand); whether it was stored.

        The aggregate must have no pending events: a snapshot stands for stored events only.
        """
        if self.snapshots is None:
            raise ConfigurationError("this AggregateStore has no snapshot store (snapshots=...)")
        if aggregate.pending_events:
            raise ConfigurationError(
                f"{aggregate!r} has pending events: save it before taking a snapshot"
            )
        return await self._save_snapshot(aggregate, uow)


_IN_UNITS: weakref.WeakKeyDictionary[Any, dict[int, int]] = weakref.WeakKeyDictionary()
"""Per unit of work, per aggregate (by identity): how many of its pending events that unit
has appended. Dropped with the unit: a unit run again is a new one, and appends them again."""


def _appended_in(uow: UnitOfWork | None, aggregate: AggregateRoot) -> int:
    if uow is None:
        return 0
    return _IN_UNITS.get(uow, {}).get(id(aggregate), 0)


def _appended(uow: UnitOfWork, aggregate: AggregateRoot, count: int) -> None:
    """Record that ``uow`` has appended the first ``count`` pending events of ``aggregate``;
    they are marked saved when it commits."""
    in_unit = _IN_UNITS.setdefault(uow, {})
    if id(aggregate) not in in_unit:
        uow.after_commit(lambda: aggregate._mark_saved(in_unit.pop(id(aggregate), 0)))
    in_unit[id(aggregate)] = count


def take_snapshot(aggregate: AggregateRoot) -> Snapshot:
    """The snapshot of ``aggregate`` at its current version."""
    cls = type(aggregate)
    return Snapshot(
        aggregate_id=aggregate.id,
        aggregate_type=cls.aggregate_type,
        version=aggregate.version,
        schema_version=cls.snapshot_schema_version,
        state=aggregate.snapshot_state(),
    )


def usable(snapshot: Snapshot | None, cls: type[AggregateRoot]) -> bool:
    """Whether ``snapshot`` may stand in for replaying ``cls``'s events up to its version."""
    if snapshot is None:
        return False
    if snapshot.aggregate_type != cls.aggregate_type:
        logger.warning(
            "snapshot of %s is of type %s, not %s: ignored",
            snapshot.aggregate_id,
            snapshot.aggregate_type,
            cls.aggregate_type,
        )
        return False
    if snapshot.schema_version != cls.snapshot_schema_version:
        logger.info(
            "snapshot of %s has schema %d, %s is at %d: ignored (stale)",
            snapshot.aggregate_id,
            snapshot.schema_version,
            cls.__name__,
            cls.snapshot_schema_version,
        )
        return False
    return True
