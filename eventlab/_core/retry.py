"""How long a failed attempt waits before the next: a failed delivery (the outboxes' retry
policy, a consumer's restarts) and a transaction that lost a race."""

from __future__ import annotations

import random
import time

from pymongo.errors import PyMongoError

from .errors import CommitOutcomeUnknownError, EventlabError


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)``, capped at ``cap``,
    with ±25 % jitter (so that messages failed together are not retried together)."""
    raw = min(cap, base * 2 ** (attempts - 1))
    return float(raw * random.uniform(0.75, 1.25))


_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.25


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter, for transactions run again: spreads contending
    writers apart."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))


TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"


def has_label(exc: BaseException, label: str) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(label)


def transient(exc: BaseException, deadline: float, *, typed: bool = False) -> bool:
    """Whether a failed attempt may be run again within ``deadline``: the driver labelled the
    error transient, or (``typed``) it is one of eventlab's errors that is retryable, or whose
    driver cause is labelled transient. The one rule of every backend's transactions.

    Never an unknown commit outcome: the attempt may have committed, and running it again
    could apply it twice (the runner retries the *commit* of that attempt instead)."""
    if time.monotonic() >= deadline or isinstance(exc, CommitOutcomeUnknownError):
        return False
    if has_label(exc, UNKNOWN_COMMIT):
        return False
    if has_label(exc, TRANSIENT):
        return True
    if not typed or not isinstance(exc, EventlabError):
        return False
    if exc.retryable:
        return True
    return exc.__cause__ is not None and transient(exc.__cause__, deadline, typed=True)
