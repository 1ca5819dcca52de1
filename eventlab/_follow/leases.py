"""A name's lease in the :class:`~eventlab.ports.CheckpointStore`: one process at a time runs a
subscriber, a projector, or a projection's rebuild, and renews its lease while it does; a
process that dies is taken over once its lease ends (docs/positions.md, "Crash takeover")."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from .._core.errors import ConsumerBusyError, EventlabError
from .._core.tasks import woken
from ..ports import CheckpointStore

logger = logging.getLogger("eventlab.subscriptions")


def this_process() -> str:
    """How this process is named to the others that stand by behind its lease (asked each
    time: a process forked after import has a pid of its own)."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class NameLease:
    """The lease of ``name``, taken and held by ``owner``: :meth:`claim` takes it (standing by
    while another live process holds it), :meth:`keep` renews it every third of its length
    until it is lost, :meth:`release` gives it back."""

    def __init__(self, checkpoints: CheckpointStore, name: str, owner: str, seconds: float) -> None:
        self._checkpoints = checkpoints
        self.name = name
        self.owner = owner
        self.seconds = seconds
        self.takeovers = 0
        """How many times this owner took the name over from a process that died."""

    async def try_claim(self, session_id: object = None) -> tuple[bool, str | None]:
        """Take the lease if nobody else live holds it: whether it was granted, and who holds
        it if not."""
        grant = await self._checkpoints.claim(
            self.name, self.owner, lease=self.seconds, session_id=session_id, holder=this_process()
        )
        if grant.granted and grant.took_over:
            self.takeovers += 1
            logger.info("consumer %s took over from a stopped process", self.name)
        return grant.granted, grant.holder

    async def claim(
        self,
        stop: asyncio.Event,
        *,
        session_id: object = None,
        give_up_after: float | None = None,
        standing_by: Callable[[], None] = lambda: None,
    ) -> bool:
        """Take the lease, standing by while another live process holds it; ``False`` if
        ``stop`` came first. After ``give_up_after`` seconds of standing by:
        :class:`~eventlab.ConsumerBusyError`."""
        loop = asyncio.get_running_loop()
        gave_up_at = None if give_up_after is None else loop.time() + give_up_after
        announced = False
        while not stop.is_set():
            granted, holder = await self.try_claim(session_id)
            if granted:
                return True
            if gave_up_at is not None and loop.time() >= gave_up_at:
                raise ConsumerBusyError(self.name, holder)
            if not announced:
                logger.info("consumer %s: %s runs it; standing by", self.name, holder)
                announced = True
            standing_by()
            await woken(stop, self.seconds / 6)
        return False

    async def keep(
        self,
        lost: Callable[[], Awaitable[None]],
        tick: Callable[[], None] = lambda: None,
    ) -> None:
        """Renew the lease every third of its length (``tick()`` before each renewal) until it
        is lost to another owner, then ``await lost()``. A renewal that fails is tried again
        at the next tick: the lease lasts three of them."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            tick()
            try:
                held = await self._checkpoints.renew(self.name, self.owner, lease=self.seconds)
            except EventlabError as exc:
                logger.warning("consumer %s: renewing its lease failed: %s", self.name, exc)
                continue
            if not held:
                await lost()
                return

    async def release(self) -> None:
        await self._checkpoints.release(self.name, self.owner)
