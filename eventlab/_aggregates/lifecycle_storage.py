"""What a backend provides for stream lifecycle (``LifecycleStorage``): the service
(:mod:`.lifecycle`) and the scavenge (:mod:`.scavenge`) are written once over it."""

from __future__ import annotations

from typing import Any, Protocol

from .._core.lifecycle import StreamMetadata
from ..ports import UnitOfWork


class LifecycleStorage(Protocol):
    """What a backend provides for stream lifecycle: metadata by stream, and its events as
    documents a scavenge may replace by tombstones."""

    async def metadata(
        self, aggregate_id: str, uow: UnitOfWork | None = None
    ) -> StreamMetadata | None:
        """The stream's metadata, or ``None`` for a stream never given any."""
        ...

    async def save(self, metadata: StreamMetadata, uow: UnitOfWork) -> None:
        """Store the metadata in ``uow``'s transaction (replacing the stream's)."""
        ...

    async def policies(self, after: str, limit: int) -> list[StreamMetadata]:
        """At most ``limit`` streams' metadata with ids above ``after``, by id."""
        ...

    async def documents(
        self,
        aggregate_id: str,
        after_version: int,
        through_version: int,
        *,
        tombstones: bool = False,
    ) -> list[dict[str, Any]]:
        """The stream's live events with ``after < version <= through``, without payloads
        (``_id``, ids, types, ``version``, ``position``, ``recorded_at``); with
        ``tombstones``, its tombstones there too."""
        ...

    async def archived(
        self, aggregate_id: str, after_version: int, through_version: int
    ) -> list[dict[str, Any]]:
        """The stream's events in the store's archive with ``after < version <= through``
        (docs/archive.md), whatever the live collection holds at their positions; ``[]``
        for a store with no archive."""
        ...

    async def replace(self, documents: list[dict[str, Any]]) -> int:
        """Replace each event by its tombstone (``lifecycle.scavenged``) unless it already is
        one, each on its own (atomic per event, idempotent); an event no longer live (moved
        to the archive) gets its tombstone written at its position, which shadows the
        archive's copy. How many were replaced or written."""
        ...

    async def begin_rewrite(self) -> Any:
        """Mark the store as being rewritten (a scavenge is about to replace events), durably,
        before any replacement: until :meth:`end_rewrite`, copies of the log (the frame cache)
        trust nothing they read. A token for :meth:`end_rewrite`."""
        ...

    async def end_rewrite(self, token: Any) -> None:
        """Clear the mark :meth:`begin_rewrite` made (and any a run killed before it left) and
        move the store's rewrite generation on: copies made before are out of date."""
        ...

    async def rewrite_marks(self) -> list[str]:
        """The marks :meth:`begin_rewrite` left and no :meth:`end_rewrite` cleared yet (runs
        under way, or killed half-way)."""
        ...

    async def clear_rewrite_marks(self, marks: list[str]) -> None:
        """Clear ``marks`` (left by runs killed half-way: a complete run has done their work
        again) and move the rewrite generation on."""
        ...

    async def aggregate_type(self, aggregate_id: str) -> str | None:
        """The aggregate type of the stream's last document, ``None`` for no document."""
        ...
