"""What one read of the log asks for, checked once for every backend: the range of positions
``(after, until]``, the type filters, whether every occupied position is wanted, and how many
documents may be looked at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .checks import check_int, check_page_size


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A checked read of the log (see :meth:`~eventlab.ports.EventLog.read`)."""

    after: int
    until: int
    event_types: frozenset[str] | None = None
    aggregate_types: frozenset[str] | None = None
    every_position: bool = False
    limit: int | None = None

    @classmethod
    def checked(
        cls,
        after: int,
        until: int,
        event_types: Sequence[str] | None,
        aggregate_types: Sequence[str] | None,
        every_position: bool,
        limit: int | None,
    ) -> LogQuery:
        return cls(
            check_int(after, "after"),
            check_int(until, "until"),
            None if event_types is None else frozenset(event_types),
            None if aggregate_types is None else frozenset(aggregate_types),
            bool(every_position),
            None if limit is None else check_page_size(limit, "limit"),
        )

    @property
    def filtered(self) -> bool:
        """Whether the read selects events by type."""
        return self.event_types is not None or self.aggregate_types is not None

    def wants(self, event_type: object, aggregate_type: object) -> bool:
        """Whether an event of these types passes the filters."""
        return (self.event_types is None or event_type in self.event_types) and (
            self.aggregate_types is None or aggregate_type in self.aggregate_types
        )
