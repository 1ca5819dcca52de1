"""A projection's rebuild: a new generation of its read model built from the first event beside
the live one, then swapped in by one transaction (docs/projections.md says why each step is
safe). One rebuild runs at a time: it holds a claim, and a second gets
:class:`~eventlab.RebuildInProgressError`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._core.errors import RebuildInProgressError
from .._core.tasks import ended
from ..ports import Backend, CheckpointStore, ReadModelStore, UnitOfWork
from .leases import NameLease

if TYPE_CHECKING:
    from .subscriber import Subscriber

_REBUILD_LEASE = 10.0
"""Seconds a rebuild's claim lasts; it is renewed every third of it."""

SwapOutcome = Literal["swapped", "behind", "superseded"]


@dataclass
class Rebuild:
    """One rebuild of the read model of the projection ``name`` at ``version``."""

    name: str
    version: int
    checkpoints: CheckpointStore
    read_models: ReadModelStore
    backend: Backend
    keep_retired: float
    """Seconds a replaced generation stays readable (a later rebuild drops it)."""
    checkpoint_name: Callable[[int], str]
    """The name of a generation's checkpoint."""
    builder: Callable[[int], Subscriber]
    """The subscriber that writes a generation from the first event."""
    _claim: NameLease = field(init=False)

    def __post_init__(self) -> None:
        self._claim = NameLease(
            self.checkpoints,
            f"projection:{self.name}:rebuild",
            f"rebuild:{uuid.uuid4().hex}",
            _REBUILD_LEASE,
        )

    async def run(self) -> None:
        """Claim, build the new generation beside the live one, swap; the claim is given back
        whatever happens."""
        granted, holder = await self._claim.try_claim()
        if not granted:
            raise RebuildInProgressError(
                f"{self.name}: another rebuild is running ({holder or 'elsewhere'}); "
                "nothing was changed"
            )
        renewer = asyncio.get_running_loop().create_task(self._claim.keep(_swap_will_tell))
        try:
            await self._build_and_swap()
        finally:
            renewer.cancel()
            await ended(renewer)
            await self._claim.release()

    async def _build_and_swap(self) -> None:
        read_models, checkpoints = self.read_models, self.checkpoints
        await read_models.state(self.name, self.version)  # it exists before any generation
        for dropped in await read_models.drop_retired(self.name, self.keep_retired):
            await checkpoints.delete(self.checkpoint_name(dropped))
        new = await read_models.next_generation(self.name)
        builder = self.builder(new)
        while True:
            await builder.run_until_caught_up()  # again: what was appended meanwhile
            outcome = await self.backend.run(lambda uow: self._swap(uow, new))
            if outcome == "swapped":
                return
            if outcome == "superseded":
                raise RebuildInProgressError(
                    f"{self.name}: this rebuild lost its claim to another; nothing changed"
                )

    async def _swap(self, uow: UnitOfWork, new: int) -> SwapOutcome:
        """Make ``new`` the live generation if it is at least as far as the live one.

        One transaction: the checkpoints are read and the pointer moved together. A live
        projector's batch writes the same state, so it and the swap cannot both commit on what
        the other has not seen: readers never see the read model go back to an earlier
        position (``"behind"``: catch up and try again). The claim is written in the same
        transaction: a rebuild whose claim was taken over cannot swap (``"superseded"``).
        """
        checkpoints, read_models = self.checkpoints, self.read_models
        if not await checkpoints.holds(self._claim.name, self._claim.owner, uow):
            return "superseded"
        old = (await read_models.state(self.name, self.version)).generation
        current = await checkpoints.get(self.checkpoint_name(old), uow=uow)
        built = await checkpoints.get(self.checkpoint_name(new), uow=uow)
        if (built.position if built else 0) < (current.position if current else 0):
            return "behind"
        swapped = await read_models.swap(self.name, old, new, self.version, uow)
        return "swapped" if swapped else "superseded"


async def _swap_will_tell() -> None:
    """A rebuild that lost its claim goes on building: its swap sees the loss and refuses."""
