"""How long a failed delivery waits before the next attempt (the outboxes' retry policy)."""

from __future__ import annotations

import random


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)``, capped at ``cap``,
    with ±25 % jitter (so that messages failed together are not retried together)."""
    raw = min(cap, base * 2 ** (attempts - 1))
    return float(raw * random.uniform(0.75, 1.25))
