"""Where a follower is: the last position it is done with (its checkpoint), the highest head it
has read (its lag is the difference), and the permanent gaps it has passed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..ports import KEPT_GAPS
from .batches import Batch

logger = logging.getLogger("eventlab.subscriptions")


class FollowerState:
    """A follower's position, the highest head it read and the permanent gaps it passed: the
    latest ones kept, all of them counted, logged and handed to ``on_gap``."""

    def __init__(self, position: int, on_gap: Callable[[list[int]], None] | None) -> None:
        self.position = position
        """The last position the follower is done with (a checkpoint)."""
        self.head_seen = 0
        """The highest head the follower has read."""
        self.gaps: list[int] = []
        """The latest permanent gaps passed (at most :data:`~eventlab.ports.KEPT_GAPS`), in
        order; :attr:`gaps_passed` counts them all."""
        self.gaps_passed = 0
        self._on_gap = on_gap

    def saw_head(self, head: int) -> None:
        self.head_seen = max(self.head_seen, head)

    def passed(self, batch: Batch) -> None:
        """The follower handed ``batch`` on: its position moves to the batch's end, over the
        batch's permanent gaps."""
        self.position = batch.position
        gaps = list(batch.gaps)
        if not gaps:
            return
        self.gaps_passed += len(gaps)
        self.gaps.extend(gaps[-KEPT_GAPS:])
        del self.gaps[:-KEPT_GAPS]
        logger.info("subscription passed permanent gap(s) at position(s) %s", _runs(gaps))
        if self._on_gap is not None:
            self._on_gap(list(gaps))


def _runs(positions: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``"3-5, 9"``."""
    runs: list[str] = []
    first = last = positions[0]
    for p in positions[1:]:
        if p != last + 1:
            runs.append(str(first) if first == last else f"{first}-{last}")
            first = p
        last = p
    runs.append(str(first) if first == last else f"{first}-{last}")
    return ", ".join(runs)
