"""The record in the store that says what is archived: where, which manifest (and its
SHA-256), up to which position, and what state the last job left it in. Each backend keeps
one per store (MongoDB: a document beside the position counter) and changes it only by
compare-and-set on the manifest it names, so two jobs can never both move a range."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

MarkerState = Literal["removing", "archived", "restoring"]
"""``removing``: the files are written and checked, the live copies are being removed (reads
take an event from either); ``archived``: done; ``restoring``: the events are being put back
(reads still take the archive)."""


@dataclass(frozen=True, slots=True)
class ArchiveMarker:
    """The store's record of its archive."""

    location: str
    manifest: str
    sha256: str
    through: int
    events: int
    state: MarkerState

    def document(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, document: dict[str, Any] | None) -> ArchiveMarker | None:
        if not document:
            return None
        return cls(
            str(document["location"]),
            str(document["manifest"]),
            str(document["sha256"]),
            int(document["through"]),
            int(document["events"]),
            document["state"],
        )


class MarkerStore(Protocol):
    """Where a backend keeps a store's :class:`ArchiveMarker`."""

    async def get(self) -> ArchiveMarker | None:
        """The marker as committed (a majority read on MongoDB), or ``None``."""
        ...

    async def put(self, marker: ArchiveMarker | None, expected: ArchiveMarker | None) -> bool:
        """Replace the marker (``None``: remove it) if the stored one names ``expected``'s
        manifest in ``expected``'s state (``None``: there is none); whether it did."""
        ...
