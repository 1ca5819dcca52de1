"""What a checkpoint save asks for and how a lost one is refused, the same on every backend:
the arguments checked once, and one error for a checkpoint another instance has moved or
taken over."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .checks import check_int, check_name
from .errors import CheckpointConflictError, ConfigurationError


@dataclass(frozen=True, slots=True)
class CheckpointSave:
    """A checked :meth:`~eventlab.ports.CheckpointStore.save`."""

    name: str
    position: int
    expected: int | None
    gaps: list[int]
    owner: str | None

    @classmethod
    def checked(
        cls, name: Any, position: Any, expected: Any, gaps: Any, owner: Any
    ) -> CheckpointSave:
        name = check_name(name, "subscriber name")
        position = check_int(position, "position")
        if isinstance(gaps, str | bytes | dict) or not isinstance(gaps, Iterable):
            raise ConfigurationError(f"gaps must be an iterable of positions, got {gaps!r:.60}")
        gap_list = [check_int(g, "a gap position") for g in gaps]
        return cls(
            name,
            position,
            None if expected is None else check_int(expected, "expected"),
            gap_list,
            None if owner is None else check_name(owner, "owner"),
        )


def checkpoint_conflict(name: str, expected: int | None) -> CheckpointConflictError:
    """The refusal of a save whose expectation (a position, or ownership) no longer holds."""
    where = f"at position {expected}" if expected is not None else "owned by this process"
    return CheckpointConflictError(
        f"checkpoint {name!r} is no longer {where}: another instance of this subscriber "
        "advanced it or took it over (one instance runs per name; the others stand by)"
    )


MAX_LEASE = 86_400.0
"""The longest lease a consumer may hold (a day): a successor waits this long after a crash, and
a larger number overflows the clocks it is added to."""


def check_lease(lease: Any) -> float:
    """A checkpoint lease: a positive number of seconds, at most a day."""
    if (
        isinstance(lease, bool)
        or not isinstance(lease, int | float)
        or not 0 < lease <= MAX_LEASE  # NaN fails this too
    ):
        raise ConfigurationError(
            f"a lease must be a positive number of seconds, at most {MAX_LEASE:,.0f}, "
            f"not {lease!r:.80}"
        )
    return float(lease)
