"""The transaction policy: what every transaction eventlab runs is started with, and what its
errors mean. Shared by the async runner (``_transactions.py``) and its generated sync twin
(``_transactions_sync.py``), so that a rule fixed once is fixed in both.

* Every transaction commits with write concern ``majority``, set explicitly (never left to the
  deployment's default): an acknowledged write survives a failover (docs/scaling.md).
* ``TransientTransactionError`` (a write conflict, a step-down, a network error before commit)
  reruns the whole transaction; ``UnknownTransactionCommitResult`` retries the commit only
  (commit is idempotent on the server). Both within a time budget, with full-jitter backoff.
* A commit given up on while its outcome is unknown is ended on the server (``killSessions``),
  so a transaction that is still open there releases its locks now, not when the server
  expires it.
"""

from __future__ import annotations

import time
from typing import NoReturn

from pymongo.errors import ConfigurationError as DriverConfigurationError
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)
from pymongo.write_concern import WriteConcern

from .._core.errors import (
    CommitOutcomeUnknownError,
    ConfigurationError,
    ConnectionFailedError,
    DeploymentError,
    EventlabError,
    NotAuthorizedError,
    TransactionAbortedError,
    TransactionTimeoutError,
    WriteConflictError,
    first_line,
)
from .._core.retry import backoff_delay as backoff_delay
from .._core.retry import may_run_again
from .._core.store_options import DEFAULT_TIME_BUDGET as DEFAULT_TIME_BUDGET

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

WRITE_CONFLICT = 112
NO_SUCH_TRANSACTION = 251
DUPLICATE_KEY = 11000
UNAUTHORIZED = 13
UNAVAILABLE = frozenset(
    {6, 7, 89, 91, 134, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436}
)
"""Server codes of a deployment that cannot serve the operation at this moment (an election,
a shutdown, a node out of reach): the drivers' retryable-error codes."""

MAJORITY = WriteConcern("majority")
"""The write concern of every transaction's commit."""
END_SESSION_TIMEOUT = 2.0
"""Seconds an attempt to end a given-up session on the server may take."""


def has_label(exc: BaseException, label: str) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(label)


def transient(exc: BaseException, deadline: float, *, typed: bool = False) -> bool:
    """Whether a failed attempt may be run again within ``deadline``: the driver labelled the
    error transient, or (``typed``) it is one of eventlab's errors that may run again
    (:func:`~eventlab._core.retry.may_run_again`), or whose driver cause is labelled transient.

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
    if may_run_again(exc, deadline):
        return True
    return exc.__cause__ is not None and transient(exc.__cause__, deadline, typed=True)


def is_duplicate_key(exc: BaseException) -> bool:
    """Whether a driver error is (or holds) a duplicate key error (code 11000)."""
    if isinstance(exc, DuplicateKeyError):
        return True
    details = getattr(exc, "details", None)
    errors = (details.get("writeErrors") if isinstance(details, dict) else None) or []
    return any(isinstance(e, dict) and e.get("code") == DUPLICATE_KEY for e in errors)


def retryable(exc: BaseException, label: str, deadline: float) -> bool:
    """Whether ``exc`` carries ``label`` and the budget still allows a retry."""
    return has_label(exc, label) and time.monotonic() < deadline


def raise_mapped(exc: BaseException) -> NoReturn:
    """The one place a failed transaction's error becomes eventlab's (or stays as it is)."""
    mapped = map_error(exc, timed_out=has_label(exc, TRANSIENT))
    if mapped is exc:
        raise exc
    raise mapped from exc


def map_error(exc: BaseException, *, timed_out: bool = False) -> BaseException:
    """The eventlab error for a driver error (the driver error becomes its ``__cause__``), by
    what the caller can do about it (README, "Errors: what to catch"); used for reads, plain
    writes and transactions alike.

    Errors that are not the driver's (including eventlab's own) are returned unchanged.
    """
    if not isinstance(exc, PyMongoError):
        return exc
    if has_label(exc, UNKNOWN_COMMIT) or isinstance(exc, WriteConcernError):
        return CommitOutcomeUnknownError(
            f"the commit's outcome is unknown ({first_line(exc)}): it may have applied. Re-send "
            "appends with the same event ids (one that applied is returned as stored); check "
            "your other, non-idempotent effects before doing them again"
        )
    if timed_out:
        return TransactionTimeoutError(
            f"transaction kept failing transiently until the time budget ran out: {first_line(exc)}"
        )
    if isinstance(exc, ServerSelectionTimeoutError | ConnectionFailure):
        return ConnectionFailedError(f"lost the connection to MongoDB: {first_line(exc)}")
    if isinstance(exc, OperationFailure):
        return _server_error(exc)
    if isinstance(exc, InvalidOperation | DriverConfigurationError):
        return ConfigurationError(f"{type(exc).__name__}: {first_line(exc)}")
    return DeploymentError(f"{type(exc).__name__}: {first_line(exc)}")


def _server_error(exc: OperationFailure) -> EventlabError:
    """A command the server answered with an error."""
    message = first_line(exc)
    if exc.code == WRITE_CONFLICT:
        return WriteConflictError(f"write conflict: {message}")
    if exc.code == NO_SUCH_TRANSACTION or has_label(exc, TRANSIENT):
        return TransactionAbortedError(
            f"the transaction was aborted or expired on the server: {message}"
        )
    if exc.code in UNAVAILABLE:
        return ConnectionFailedError(f"the deployment could not serve it now: {message}")
    if exc.code == UNAUTHORIZED:
        return NotAuthorizedError(
            f"the deployment refused it: the user lacks a privilege it needs ({message})",
            code=exc.code,
        )
    return DeploymentError(f"the deployment refused it: {message}", code=exc.code)
