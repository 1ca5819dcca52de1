"""The in-memory store's archive record (:class:`~eventlab._archive.ArchiveMarker`), in a
table of its own beside the store's tables."""

from __future__ import annotations

from .._archive import ArchiveMarker
from ._database import MemoryDatabase

_MARKER = "marker"


class MemoryArchiveMarkers:
    """The store's :class:`~eventlab._archive.ArchiveMarker` (compare-and-set by manifest and
    state; nothing awaits between the comparison and the write)."""

    def __init__(self, database: MemoryDatabase, name: str) -> None:
        self._db = database
        self.table = f"{name}:archive"

    async def get(self) -> ArchiveMarker | None:
        return ArchiveMarker.of(self._db.peek(self.table, _MARKER))

    async def put(self, marker: ArchiveMarker | None, expected: ArchiveMarker | None) -> bool:
        await self._db.until_free(self.table, _MARKER)
        found = ArchiveMarker.of(self._db.peek(self.table, _MARKER))
        if (found is None) != (expected is None) or (
            found is not None
            and expected is not None
            and (found.manifest, found.state) != (expected.manifest, expected.state)
        ):
            return False
        if marker is None:
            self._db.delete(self.table, _MARKER)
        else:
            self._db.put(self.table, _MARKER, marker.document())
        return True
