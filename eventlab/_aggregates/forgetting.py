"""Forgetting a subject: its data key destroyed, the snapshots that may hold its values
deleted; what every backend's store offers on top of its key store, written once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._core.errors import ConfigurationError
from .._core.personal import check_subject
from .._core.sealing import sealed_subject
from .._shred.personal_data import PersonalData
from ..ports import SnapshotStore

PAGE = 10_000
"""Positions per range of the scan for a subject's events."""


@dataclass(frozen=True, slots=True)
class Forgetting:
    """What :meth:`ForgetsSubjects.forget` did (or, with ``dry_run``, would do)."""

    subject: str
    had_key: bool
    """The subject had a live key (``False``: unknown, or forgotten already)."""
    events: int
    """Events holding values sealed for the subject, found by a scan of the log made after
    the key was destroyed: they read as redacted from now on. An append that took the key
    before and commits after the scan is not counted (its values are unreadable too)."""
    streams: tuple[str, ...]
    """The streams of those events (their snapshots in the given snapshot stores are
    deleted)."""
    snapshots_deleted: int
    """Snapshots deleted (with ``dry_run``: snapshots that exist and would be)."""
    dry_run: bool = False

    def summary(self) -> str:
        """One line for a terminal."""
        verb = "would become" if self.dry_run else "now read as"
        key = "a key" if self.had_key else "no live key (unknown, or forgotten already)"
        snapshots = "would delete" if self.dry_run else "deleted"
        return (
            f"subject {self.subject!r}: {key}; {_count(self.events, 'event')} in "
            f"{_count(len(self.streams), 'stream')} {verb} redacted; {snapshots} "
            f"{_count(self.snapshots_deleted, 'snapshot')}"
        )


class ForgetsSubjects:
    """``forget`` for a store whose ``personal`` holds a key store, whose ``log`` reads ranges
    and whose ``backend`` has the default snapshot store."""

    personal: PersonalData | None
    log: Any
    backend: Any

    async def forget(
        self,
        subject: str,
        *,
        dry_run: bool = False,
        snapshots: Sequence[SnapshotStore] | None = None,
    ) -> Forgetting:
        """Destroy ``subject``'s data key: from then on every read shows its personal fields
        as :data:`~eventlab.REDACTED`, and an append with its personal data is refused
        (:class:`~eventlab.SubjectForgottenError`). Then delete the snapshots of the streams
        holding its values (they may hold its values in the aggregates' state).

        Idempotent: forgetting twice, or a subject never seen, destroys nothing more and
        deletes what snapshots were taken since. Read models your projections built keep
        what they copied: rebuild them (docs/forgetting.md).

        :param dry_run: say what would become unreadable, change nothing.
        :param snapshots: the snapshot stores whose snapshots of those streams to delete
            (default: the backend's). Snapshots of personal state are sealed with the
            subjects' keys wherever they live, so one this misses is unreadable anyway;
            deleting them frees the space at once.
        """
        subject = check_subject(subject)
        if not isinstance(dry_run, bool):
            raise ConfigurationError(f"dry_run must be a bool, got {dry_run!r:.80}")
        stores = _snapshot_stores(snapshots, self.backend)
        if self.personal is None:
            raise ConfigurationError(
                "this store has no key store: construct it with keys= (docs/forgetting.md)"
            )
        if dry_run:
            had_key = subject in await self.personal.keys.get([subject])
            events, streams = await self._subject_events(subject)
            present = 0
            for store in stores:
                for stream in streams:
                    present += await store.get(stream) is not None
            return Forgetting(subject, had_key, events, streams, present, dry_run=True)
        # The key first: from here on nothing can open the values, whatever else happens
        # (a scan or a deletion that fails after it is finished by forgetting again). The
        # scan after it counts the appends that took the key before and committed since.
        # A snapshot of personal state is sealed with the key: none written after this opens.
        had_key = await self.personal.keys.destroy(subject)
        events, streams = await self._subject_events(subject)
        deleted = 0
        for store in stores:
            for stream in streams:
                deleted += await store.delete(stream)
        return Forgetting(subject, had_key, events, streams, deleted)

    async def _subject_events(self, subject: str) -> tuple[int, tuple[str, ...]]:
        """How many events hold values sealed for ``subject``, and in which streams (the log
        read as stored, range by range)."""
        log = self.log
        # As stored: a log that opens personal fields hands out a sealed view of itself.
        sealed = log.sealed() if callable(getattr(log, "sealed", None)) else log
        head = (await log.head()).position
        count = 0
        streams: dict[str, None] = {}
        after = 0
        while after < head:
            found = await sealed.read(after, min(after + PAGE, head))
            for event in found.events:
                if any(sealed_subject(v) == subject for v in event.payload.values()):
                    count += 1
                    streams[event.aggregate_id] = None
            after = found.through
        return count, tuple(streams)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _snapshot_stores(snapshots: Any, backend: Any) -> list[SnapshotStore]:
    if snapshots is None:
        return [backend.snapshots()]
    if isinstance(snapshots, str | bytes | dict) or not isinstance(snapshots, Sequence):
        raise ConfigurationError(
            f"snapshots must be a list of snapshot stores, got {type(snapshots).__name__}"
        )
    for store in snapshots:
        if not callable(getattr(store, "delete", None)):
            raise ConfigurationError(f"not a snapshot store: {type(store).__name__}")
    return list(snapshots)
