"""A tombstone: the document that records a position of the log as a permanent gap.

Every backend stores it at the position, like an event, so that exactly one of the two can
exist there, whoever commits first (docs/positions.md, "Holes").
"""

from __future__ import annotations

from typing import Any

from .domain import utc_now

TOMBSTONE_FIELD = "gap"
"""Set on a tombstone: the document that stands for a permanently empty position."""


def tombstone(position: int) -> dict[str, Any]:
    """The document that records ``position`` as a permanent gap.

    Its ``_id`` is a string (events' ids are UUIDs) and its ``version`` the position, so that
    it never collides on the ``(aggregate_id, version)`` index (it has no aggregate id)."""
    return {
        "_id": f"gap:{position}",
        "position": position,
        "version": position,
        TOMBSTONE_FIELD: True,
        "recorded_at": utc_now(),
    }


def is_tombstone(document: dict[str, Any] | None) -> bool:
    """Whether ``document`` (a stored document, or nothing) is a tombstone."""
    return bool(document is not None and document.get(TOMBSTONE_FIELD))
