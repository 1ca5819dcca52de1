"""How long a failed attempt waits before the next (a failed delivery: the outboxes' retry
policy, a consumer's restarts; a transaction that lost a race), and when an attempt that raised
one of eventlab's errors may run again at all: the rules every backend shares. MongoDB's
transaction runner adds what its driver's error labels say (``_mongo/transaction_policy.py``);
nothing here knows the driver."""

from __future__ import annotations

import random
import time

from .errors import CommitOutcomeUnknownError, EventlabError

_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.25


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)``, capped at ``cap``,
    with ±25 % jitter (so that messages failed together are not retried together)."""
    raw = min(cap, base * 2 ** (attempts - 1))
    return float(raw * random.uniform(0.75, 1.25))


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, for transactions run again: spreads contending
    writers apart."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))


def may_run_again(exc: BaseException, deadline: float) -> bool:
    """Whether an attempt that raised one of eventlab's errors may be run again before
    ``deadline``: the error (or the error that caused it) is retryable.

    Never an unknown commit outcome: the attempt may have committed, and running it again
    could apply it twice."""
    if time.monotonic() >= deadline or isinstance(exc, CommitOutcomeUnknownError):
        return False
    if not isinstance(exc, EventlabError):
        return False
    if exc.retryable:
        return True
    cause = exc.__cause__
    return cause is not None and may_run_again(cause, deadline)
