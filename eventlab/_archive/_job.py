"""The archive and restore jobs, written once over the :class:`ArchiveHost` each backend fills
in (docs/archive.md).

Archive, in an order a kill at any point leaves safe (events live, or archived and readable;
never lost, never read twice):

1. finish what an earlier run left (a marker ``removing``: remove the rest of its live copies);
2. select the live events at or below the bound, but each stream's first and last events (which
   stay live: the last so the live collection always knows every stream's version and the
   expected-version checks work as they do without an archive; the first so the unique index on
   ``(aggregate_id, version)`` still refuses a second version 1, which is all that guards an
   append expecting a new stream);
3. write them as Parquet files, read each back and check it, write an immutable manifest;
4. record the manifest in the store (compare-and-set: one job at a time), state ``removing``;
5. remove the live copies, a chunk at a time, in position order (a stream's live events stay
   its first and a suffix); then state ``archived``.

Restore puts every archived event back (positions, ids and times kept), newest first, then
removes the record; the files stay where they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from .._core.checks import check_int
from .._core.errors import ArchiveError, ConfigurationError, ConflictError
from .._core.race_points import ARCHIVE_FILES_WRITTEN, ARCHIVE_REMOVING, ARCHIVE_RESTORING
from ..ports import LogHead
from ._location import ArchiveLocation
from ._manifest import Manifest, check_owner, save
from ._marker import ArchiveMarker
from ._reads import ArchiveReader
from ._segments import write_segments
from ._view import documents

CHUNK = 1_000
"""Live copies removed (or events put back) per write."""


class ArchiveHost(Protocol):
    """What a backend gives the jobs: its store's identity, its marker, its live documents."""

    @property
    def archive_reader(self) -> ArchiveReader: ...

    def archive_store_name(self) -> str:
        """The store's name as an archive records it (database and collection)."""
        ...

    async def incarnation(self) -> str:
        """:meth:`~eventlab.ports.DocumentLog.incarnation`."""
        ...

    async def head(self) -> LogHead: ...

    async def live_documents(self, through: int) -> list[dict[str, Any]]:
        """The live event documents at positions ``<= through`` (no tombstones), by position."""
        ...

    async def streams_continuing(self, lasts: dict[str, int], through: int) -> set[str]:
        """Which of these streams have an event after the version given for each (each
        stream's given version is its last at or below position ``through``)."""
        ...

    async def first_recorded_at_or_after(self, moment: datetime) -> int | None:
        """The lowest live position recorded at or after ``moment``, ``None`` if none is."""
        ...

    async def remove(self, documents: Sequence[dict[str, Any]]) -> int:
        """Remove these live documents (by id and position); how many were there."""
        ...

    async def put_back(self, documents: Sequence[dict[str, Any]]) -> int:
        """Insert these documents as they are, those already live skipped; how many."""
        ...

    async def live_positions(self, ids: Sequence[Any]) -> dict[Any, int]:
        """The live positions of the events with these ids (those live at all)."""
        ...


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    """What :meth:`archive` did, or would do (``dry_run``)."""

    location: str
    through: int
    """The archive covers the log up to this position."""
    archived: int
    """Events this run moved (would move) into the archive."""
    first: int | None
    last: int | None
    """The lowest and highest positions moved (``None``: none)."""
    kept_live: int
    """Events at or below ``through`` left live: each stream's first and last events."""
    files: int
    """Parquet files written (0 for a dry run)."""
    total: int
    """Events the archive holds after this run."""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What :meth:`restore_archive` did, or would do (``dry_run``)."""

    location: str | None
    restored: int
    """Events put back into the live collection (would be, for a dry run)."""
    dry_run: bool = False
    scavenged: int = 0
    """Archived events not put back: a scavenge removed them (a tombstone holds each one's
    position in the live collection, and stays)."""


async def archive_events(
    host: ArchiveHost,
    location: Any,
    *,
    through: Any = None,
    before: Any = None,
    dry_run: Any = False,
) -> ArchiveReport:
    """Move the events up to ``through`` (or recorded before ``before``) into the archive at
    ``location`` (see the module doc); with ``dry_run``, only say what would move."""
    place = ArchiveLocation.of(location)
    through, before, dry_run = _checked(through, before, dry_run)
    marker = await host.archive_reader.markers.get()
    _check_marker(marker, place)
    head = await host.head()
    bound = await _bound(host, head, through, before)
    if marker is not None and marker.state == "removing" and not dry_run:
        marker = await _finish_removal(host, marker)
    live = await host.live_documents(bound) if bound else []
    if marker is not None and marker.state == "removing":  # a dry run: not finished above
        held = (await host.archive_reader.view(marker)).positions
        live = [d for d in live if int(d["position"]) not in held]
    moving, kept = await _movable(host, live, bound)
    total = (marker.events if marker else 0) + len(moving)
    report = ArchiveReport(
        place.url,
        max(bound, marker.through if marker else 0),
        len(moving),
        int(moving[0]["position"]) if moving else None,
        int(moving[-1]["position"]) if moving else None,
        kept,
        0,
        total,
        bool(dry_run),
    )
    if dry_run and marker is None:
        # What the run would refuse, the dry run refuses too (reading only).
        check_owner(place, host.archive_store_name(), await host.incarnation())
    if dry_run or not moving:
        return report
    files = await _move(host, place, marker, moving, report.through)
    return replace(report, files=files)


async def restore_events(host: ArchiveHost, *, dry_run: Any = False) -> RestoreReport:
    """Put every archived event back into the live collection (positions, ids and times
    kept), then forget the archive; the files stay. A rerun finishes an interrupted one."""
    if not isinstance(dry_run, bool):
        raise ConfigurationError(f"dry_run must be True or False, got {dry_run!r:.80}")
    markers = host.archive_reader.markers
    marker = await markers.get()
    if marker is None:
        return RestoreReport(None, 0, dry_run)
    view = await host.archive_reader.view(marker)
    every, buried = await _not_scavenged(
        host, documents(view.between(0, marker.through)), marker.through
    )
    if dry_run:
        await _unless_appended_again(host, every)
        return RestoreReport(marker.location, len(every), True, buried)
    if marker.state != "restoring":
        await _unless_appended_again(host, every)  # before anything is written
        restoring = ArchiveMarker(**{**marker.document(), "state": "restoring"})
        if not await markers.put(restoring, marker):
            raise ConflictError("another archive or restore job changed the archive: run again")
        marker = restoring
    every.reverse()  # newest first: a stream's live events stay its first and a suffix
    for start in range(0, len(every), CHUNK):
        if ARCHIVE_RESTORING.armed:
            await ARCHIVE_RESTORING.reach()
        # A position taken meanwhile (a scavenge's tombstone) is skipped as one already
        # live: the tombstone stays.
        chunk = every[start : start + CHUNK]
        await host.put_back(chunk)
        # An id appended again meanwhile made its insert a "duplicate": the record stays
        # (reads keep taking the archive's copy) and the job stops, saying which.
        await _unless_appended_again(host, chunk)
    if not await markers.put(None, marker):
        raise ConflictError("another archive or restore job changed the archive: run again")
    return RestoreReport(marker.location, len(every), scavenged=buried)


async def _unless_appended_again(host: ArchiveHost, archived: list[dict[str, Any]]) -> None:
    """Refuse a restore whose events' ids are live at other positions: appended again after
    the archive took them (an archived id is no longer in the unique index), the restore
    would store one id twice, or lose the archived event."""
    elsewhere: list[str] = []
    for start in range(0, len(archived), CHUNK):
        part = archived[start : start + CHUNK]
        live = await host.live_positions([d["_id"] for d in part])
        elsewhere += [
            str(d["_id"]) for d in part if d["_id"] in live and live[d["_id"]] != int(d["position"])
        ]
    if elsewhere:
        raise ArchiveError(
            f"{len(elsewhere):,} archived event id(s) were appended again after the archive "
            f"took them, e.g. {', '.join(elsewhere[:3])}: restoring would store each id "
            "twice. The archive stays as it is (reads go on through it); nothing more was "
            "restored"
        )


async def _not_scavenged(
    host: ArchiveHost, every: list[dict[str, Any]], through: int
) -> tuple[list[dict[str, Any]], int]:
    """The archived documents a scavenge has not removed (no live tombstone at their
    position), and how many it has."""
    buried = await host.archive_reader.tombstones(0, through)
    kept = [d for d in every if int(d["position"]) not in buried]
    return kept, len(every) - len(kept)


def _checked(through: Any, before: Any, dry_run: Any) -> tuple[int | None, datetime | None, bool]:
    if not isinstance(dry_run, bool):
        raise ConfigurationError(f"dry_run must be True or False, got {dry_run!r:.80}")
    if (through is None) == (before is None):
        raise ConfigurationError("give one of through (a position) and before (a datetime)")
    if through is not None:
        return check_int(through, "through"), None, dry_run
    if not isinstance(before, datetime):
        raise ConfigurationError(f"before must be a datetime, got {before!r:.80}")
    if before.tzinfo is None or before.utcoffset() is None:
        raise ConfigurationError(
            f"before must be timezone-aware (a naive time is ambiguous), got {before.isoformat()}"
        )
    if before > datetime.now(UTC):
        raise ConfigurationError(
            f"before {before.isoformat()} is in the future: an archive takes only what is "
            "already recorded"
        )
    return None, before, dry_run


def _check_marker(marker: ArchiveMarker | None, place: ArchiveLocation) -> None:
    if marker is None:
        return
    if marker.state == "restoring":
        raise ArchiveError(
            f"the archive at {marker.location} is being restored: run the restore again to "
            "finish it before archiving (nothing was written)"
        )
    if marker.location != place.url:
        raise ArchiveError(
            f"this store archives to {marker.location}: one store, one archive location "
            "(restore it first to move it; nothing was written)"
        )


async def _bound(
    host: ArchiveHost, head: LogHead, through: int | None, before: datetime | None
) -> int:
    if through is not None:
        if through > head.position:
            raise ConfigurationError(
                f"through {through:,} is beyond the log's head ({head.position:,}): nothing "
                "there to archive"
            )
        return through
    assert before is not None
    first = await host.first_recorded_at_or_after(before)
    return head.position if first is None else first - 1


async def _movable(
    host: ArchiveHost, live: list[dict[str, Any]], bound: int
) -> tuple[list[dict[str, Any]], int]:
    """The live documents to move, and how many are kept: each stream's first event stays, and
    its last (at or below the bound, unless the stream goes on above it)."""
    last: dict[str, int] = {}
    for doc in live:
        stream = doc["aggregate_id"]
        last[stream] = max(last.get(stream, 0), int(doc["version"]))
    continued = await host.streams_continuing(last, bound) if last else set()
    kept = {(s, v) for s, v in last.items() if s not in continued}
    kept.update((d["aggregate_id"], 1) for d in live if int(d["version"]) == 1)
    moving = [d for d in live if (d["aggregate_id"], int(d["version"])) not in kept]
    return moving, len(live) - len(moving)


async def _move(
    host: ArchiveHost,
    place: ArchiveLocation,
    marker: ArchiveMarker | None,
    moving: list[dict[str, Any]],
    through: int,
) -> int:
    """Steps 3 to 5 of the module doc; the number of files written."""
    store, incarnation = host.archive_store_name(), await host.incarnation()
    earlier = (await host.archive_reader.view(marker)).manifest if marker else None
    if earlier is not None and earlier.incarnation != incarnation:
        raise ArchiveError(
            f"{place.url} was archived from this store before it was dropped, replaced or "
            "restored: it cannot be continued (nothing was written)"
        )
    place.ensure()
    check_owner(place, store, incarnation)
    segments = write_segments(place, moving)
    manifest = Manifest(
        store, incarnation, through, (*(earlier.segments if earlier else ()), *segments)
    )
    digest = save(place, manifest)
    if ARCHIVE_FILES_WRITTEN.armed:
        await ARCHIVE_FILES_WRITTEN.reach()
    recorded = ArchiveMarker(place.url, manifest.name, digest, through, manifest.events, "removing")
    markers = host.archive_reader.markers
    if not await markers.put(recorded, marker):
        raise ConflictError(
            "another archive job recorded its archive first: run again (this run's files "
            "are named by no manifest the store knows, and are never read)"
        )
    await _finish_removal(host, recorded, moving)
    return len(segments)


async def _finish_removal(
    host: ArchiveHost, marker: ArchiveMarker, moving: list[dict[str, Any]] | None = None
) -> ArchiveMarker:
    """Remove the live copies of what ``marker``'s archive holds, then mark it ``archived``."""
    if moving is None:
        view = await host.archive_reader.view(marker)
        moving = documents(view.between(0, marker.through))
    for start in range(0, len(moving), CHUNK):
        if ARCHIVE_REMOVING.armed:
            await ARCHIVE_REMOVING.reach()
        await host.remove(moving[start : start + CHUNK])
    done = ArchiveMarker(**{**marker.document(), "state": "archived"})
    if not await host.archive_reader.markers.put(done, marker):
        raise ConflictError("another archive or restore job changed the archive: run again")
    return done
