"""``archive`` and ``restore_archive``: what every backend's store offers on top of its
:class:`~eventlab._archive.ArchiveHost`, written once."""

from __future__ import annotations

from datetime import datetime
from os import PathLike

from ._job import ArchiveHost, ArchiveReport, RestoreReport, archive_events, restore_events


class ArchivesEvents:
    """``archive`` and ``restore_archive`` for a store that gives an archive host."""

    def _archive_host(self) -> ArchiveHost:
        raise NotImplementedError

    async def archive(
        self,
        location: str | PathLike[str],
        *,
        through: int | None = None,
        before: datetime | None = None,
        dry_run: bool = False,
    ) -> ArchiveReport:
        """Move the events up to position ``through`` (or recorded before ``before``) into
        Parquet files at ``location`` (a directory, or an fsspec URL such as ``s3://bucket/x``),
        and read them from there from then on: every read of the store (streams, the log,
        subscriptions, frames) reads archive and live collection as one log. Each stream's
        first and last events stay live. ``dry_run``: say what would move, write nothing.

        A kill at any point leaves every event live, or archived and readable, never lost or
        read twice; running it again finishes the job (docs/archive.md).

        :raises ArchiveError: the location holds another store's archive (or other files),
            cannot be written, or this store archives elsewhere; nothing was removed.
        """
        return await archive_events(
            self._archive_host(), location, through=through, before=before, dry_run=dry_run
        )

    async def restore_archive(self, *, dry_run: bool = False) -> RestoreReport:
        """Put every archived event back into the live collection (ids, positions and times
        kept) and forget the archive (its files stay). Safe while appends and readers run; a
        rerun finishes an interrupted restore."""
        return await restore_events(self._archive_host(), dry_run=dry_run)
