"""Reading a range of the log, as every backend's log offers it: the arguments checked once
into a :class:`~eventlab._core.log_query.LogQuery`, then read by the backend."""

from __future__ import annotations

from collections.abc import Sequence

from .._core.log_query import LogQuery
from ..ports import LogSlice


class ReadsLogRanges:
    """:meth:`~eventlab.ports.EventLog.read` for a log that reads a checked query
    (``_read_range``)."""

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
        return await self._read_range(query)
