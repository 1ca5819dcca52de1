"""Reading a range of the log, as every backend's log offers it: the arguments checked once
into a :class:`~eventlab._core.log_query.LogQuery`, then read by the backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .._core.log_query import LogQuery
from .._shred.personal_data import PersonalData
from ..ports import LogSlice


class ReadsLogRanges:
    """:meth:`~eventlab.ports.EventLog.read` for a log that reads a checked query
    (``_read_range``). With ``personal`` set (a store given a key store), the events' personal
    fields are opened; :meth:`sealed` reads them as stored."""

    personal: PersonalData | None = None

    async def _read_range(self, query: LogQuery) -> LogSlice:
        """The slice of the log that ``query`` selects (see :meth:`read`)."""
        raise NotImplementedError

    async def read(
        self,
        after: int,
        until: int,
        *,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        every_position: bool = False,
        limit: int | None = None,
    ) -> LogSlice:
        """The events with ``after < position <= until`` that pass the filters, in position
        order (see :meth:`eventlab.ports.EventLog.read`)."""
        query = LogQuery.checked(after, until, event_types, aggregate_types, every_position, limit)
        found = await self._read_range(query)
        if self.personal is None or not found.events:
            return found
        return replace(found, events=await self.personal.open_events(found.events))

    def sealed(self) -> SealedLog:
        """This log as it is stored: personal fields left sealed (for copies that must not
        hold plaintext: the frame cache, exports)."""
        return SealedLog(self)


class SealedLog(ReadsLogRanges):
    """A log read without opening personal fields (see :meth:`ReadsLogRanges.sealed`)."""

    def __init__(self, log: ReadsLogRanges) -> None:
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def _read_range(self, query: LogQuery) -> LogSlice:
        return await self._log._read_range(query)
