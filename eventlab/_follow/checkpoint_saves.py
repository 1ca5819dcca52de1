"""Saving a checkpoint, as every backend's checkpoint store offers it: the arguments checked
once into a :class:`~eventlab._core.checkpoint_rules.CheckpointSave`, then stored by the
backend under its rules (docs/positions.md)."""

from __future__ import annotations

from collections.abc import Iterable

from .._core.checkpoint_rules import CheckpointSave
from ..ports import Checkpoint, UnitOfWork


class SavesCheckpoints:
    """:meth:`~eventlab.ports.CheckpointStore.save` and ``position`` for a checkpoint store
    that stores a checked save (``_store_save``) and reads one checkpoint (``get``)."""

    async def get(self, name: str, uow: UnitOfWork | None = None) -> Checkpoint | None:
        raise NotImplementedError

    async def _store_save(self, save: CheckpointSave, uow: UnitOfWork | None) -> None:
        """Store ``save`` under the rules of :meth:`save`, or raise
        :class:`~eventlab.CheckpointConflictError` and store nothing."""
        raise NotImplementedError

    async def position(self, name: str) -> int:
        """The stored position, 0 when there is none."""
        checkpoint = await self.get(name)
        return checkpoint.position if checkpoint else 0

    async def save(
        self,
        name: str,
        position: int,
        *,
        expected: int | None = None,
        gaps: Iterable[int] = (),
        owner: str | None = None,
        uow: UnitOfWork | None = None,
    ) -> None:
        """Store ``position`` (and record ``gaps``).

        :param expected: the position the caller last read or saved. When given, the save
            applies only if the stored position is still that (0 also matches "none saved"),
            otherwise :class:`~eventlab.CheckpointConflictError`. Without it, the position only
            ever moves forward, for at-least-once subscribers.
        :param owner: the lease holder saving it: the save applies only while the checkpoint
            names this owner (see ``claim``).
        """
        await self._store_save(CheckpointSave.checked(name, position, expected, gaps, owner), uow)
