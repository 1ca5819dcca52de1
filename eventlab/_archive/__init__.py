"""Archive: a store's old events moved into Parquet files (a local directory or an fsspec URL)
and read back through them, as one log with the live collection (docs/archive.md).

What it holds: where an archive lives and how its files are written and checked
(``_location``, ``_segments``, ``_manifest``), the record in the store that says what is
archived (``_marker``), reading through an archive (``_view``, ``_reads``), and the jobs that
move a range out and put it back (``_job``), written once over the :class:`ArchiveHost` each
backend fills in.

May import: ``_core``, ``ports``, ``_follow`` and ``workbench`` (the flat format's columns),
pyarrow, fsspec and bson; never an adapter or the driver (import-linter holds it).
"""

from ._job import ArchiveHost, ArchiveReport, RestoreReport, archive_events, restore_events
from ._marker import ArchiveMarker, MarkerStore
from ._reads import ArchiveReader
from ._store_methods import ArchivesEvents

__all__ = [
    "ArchiveHost",
    "ArchiveMarker",
    "ArchiveReader",
    "ArchiveReport",
    "ArchivesEvents",
    "MarkerStore",
    "RestoreReport",
    "archive_events",
    "restore_events",
]
