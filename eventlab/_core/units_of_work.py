"""Running a unit of work, as every backend offers it: the time budget resolved once (the
default, or a checked number of seconds), then the work run in one transaction by the
backend's own loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from .store_options import time_budget_or_default

T = TypeVar("T")
UnitT = TypeVar("UnitT")


class RunsUnitsOfWork(Generic[UnitT]):
    """``run`` and ``session_id`` of a :class:`~eventlab.ports.Backend` whose transaction loop
    is ``_run_in_transaction``."""

    async def _run_in_transaction(
        self, work: Callable[[UnitT], Awaitable[T]], session: Any, time_budget: float
    ) -> T:
        """Run ``work(uow)`` in one transaction and commit it, rerunning it on retryable
        errors within ``time_budget`` seconds."""
        raise NotImplementedError

    async def run(
        self,
        work: Callable[[UnitT], Awaitable[T]],
        *,
        session: Any = None,
        time_budget: float | None = None,
    ) -> T:
        """Run ``work(uow)`` in one transaction and commit it (see
        :meth:`eventlab.ports.Backend.run`)."""
        return await self._run_in_transaction(work, session, time_budget_or_default(time_budget))

    def session_id(self, session: Any) -> Any:
        """What a successor needs to end ``session``: its id."""
        return session.session_id
