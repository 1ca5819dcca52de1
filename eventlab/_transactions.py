"""Running a callback in a MongoDB transaction with the drivers' retry rules.

The rules (MongoDB drivers' transactions specification, also behind ``with_transaction``):

* an error labelled ``TransientTransactionError`` (a write conflict, a primary step-down, a
  network error before commit) means the whole transaction may succeed if run again: abort,
  back off, and run the **callback** again;
* an error labelled ``UnknownTransactionCommitResult`` on commit means the commit may or may not
  have happened: retry the **commit only** (commit is idempotent on the server).

Both are bounded by a time budget. Because the callback may run more than once, it must be
idempotent apart from its writes in the session (no external side effects).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)
from pymongo.write_concern import WriteConcern

from ._errors import (
    CommitOutcomeUnknownError,
    ConnectionFailedError,
    EventlabError,
    TransactionAbortedError,
    TransactionError,
    TransactionTimeoutError,
    WriteConflictError,
    first_line,
)

T = TypeVar("T")

TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

WRITE_CONFLICT = 112
NO_SUCH_TRANSACTION = 251

DEFAULT_TIME_BUDGET = 60.0
MAJORITY = WriteConcern("majority")
_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.25


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: spreads contending writers apart."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))


def has_label(exc: BaseException, label: str) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(label)


async def run_transaction(
    client: Any,
    callback: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    session: AsyncClientSession | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
    on_retry: Callable[[int, BaseException], None] | None = None,
    retry_typed_errors: bool = False,
) -> T:
    """Run ``callback(session)`` in a transaction, retrying per the drivers' rules.

    The shape of the drivers' own ``with_transaction``; what it adds is a configurable time
    budget, jittered backoff between attempts and eventlab's typed errors. A callback that ends
    the transaction itself (aborts it on purpose and returns a value) is not committed: its
    value is returned as it is.

    :param client: the ``AsyncMongoClient`` that starts the session (unused if ``session``).
    :param session: run in this session (left open) instead of a new one.
    :param time_budget: seconds after which a transient failure is no longer retried and
        :class:`~eventlab.TransactionTimeoutError` is raised.
    :param on_retry: called with (attempt, error) before each retry, for metrics.
    :param retry_typed_errors: also rerun the callback when it raises one of eventlab's typed
        errors whose driver cause is labelled transient. For callbacks made of eventlab calls
        in a caller's unit of work (:func:`~eventlab.run_unit_of_work`): those calls raise
        typed errors, and a write conflict among them must still be retried. eventlab's own
        internal transactions leave it off: their typed errors are decisions, not conflicts.
    :returns: what the callback returned in the attempt that committed.
    """
    if session is None:
        async with client.start_session() as own:
            return await _with_transaction(own, callback, time_budget, on_retry, retry_typed_errors)
    return await _with_transaction(session, callback, time_budget, on_retry, retry_typed_errors)


async def _with_transaction(
    session: AsyncClientSession,
    callback: Callable[[AsyncClientSession], Awaitable[T]],
    time_budget: float,
    on_retry: Callable[[int, BaseException], None] | None,
    retry_typed_errors: bool = False,
) -> T:
    deadline = time.monotonic() + time_budget
    attempt = 0
    while True:
        if attempt:
            await asyncio.sleep(backoff_delay(attempt))
        # Majority, explicitly: an acknowledged append must survive a failover (docs/scaling.md).
        await session.start_transaction(write_concern=MAJORITY)
        try:
            result = await callback(session)
        except BaseException as exc:  # a cancelled task too: never leave the transaction open
            if session.in_transaction:
                await session.abort_transaction()
            driver_error = _driver_cause(exc) if retry_typed_errors else exc
            if not _retryable(driver_error, TRANSIENT, deadline):
                _raise_mapped(exc)
            attempt += 1
            _notify(on_retry, attempt, exc)
            continue
        if not session.in_transaction:
            return result  # the callback ended the transaction itself: nothing to commit
        try:
            await commit_with_retry(session, deadline)
        except PyMongoError as exc:
            if not _retryable(exc, TRANSIENT, deadline):
                if has_label(exc, UNKNOWN_COMMIT):
                    await _end_on_server(session)
                _raise_mapped(exc)
            attempt += 1
            _notify(on_retry, attempt, exc)
            continue
        return result


async def commit_with_retry(session: AsyncClientSession, deadline: float) -> None:
    """Commit; a commit whose outcome is unknown is retried *as a commit* until ``deadline``.

    Commit is idempotent on the server, so a retried commit applies the transaction at most
    once. ``MaxTimeMSExpired`` is excluded, as the specification says (the time is up anyway).
    """
    attempt = 0
    while True:
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if isinstance(exc, ExecutionTimeout) or not _retryable(exc, UNKNOWN_COMMIT, deadline):
                raise
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt))


async def _end_on_server(session: AsyncClientSession) -> None:
    """Best effort: end the session on the server, which aborts its transaction if still open.

    After giving up on a commit whose outcome is unknown, the transaction may still be open
    on the server, holding its locks (the position counter among them) until the server
    expires it, by default a minute later: every appender would wait for it.
    """
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            session.client.admin.command("killSessions", [session.session_id]), timeout=2
        )


def _driver_cause(exc: BaseException) -> BaseException:
    """The driver error behind one of eventlab's typed errors (the error itself otherwise)."""
    cause: BaseException | None = exc
    while isinstance(cause, EventlabError):
        cause = cause.__cause__
    return cause if cause is not None else exc


def _retryable(exc: BaseException, label: str, deadline: float) -> bool:
    return has_label(exc, label) and time.monotonic() < deadline


def _notify(
    on_retry: Callable[[int, BaseException], None] | None, attempt: int, exc: BaseException
) -> None:
    if on_retry is not None:
        on_retry(attempt, exc)


def _raise_mapped(exc: BaseException) -> NoReturn:
    """The one place a failed transaction's error becomes eventlab's (or stays as it is)."""
    mapped = map_error(exc, timed_out=has_label(exc, TRANSIENT))
    if mapped is exc:
        raise exc
    raise mapped from exc


def map_error(exc: BaseException, *, timed_out: bool = False) -> BaseException:
    """The eventlab error for a driver error (the driver error becomes its ``__cause__``).

    Errors that are not the driver's (including eventlab's own) are returned unchanged.
    """
    if not isinstance(exc, PyMongoError):
        return exc
    if has_label(exc, UNKNOWN_COMMIT) or isinstance(exc, WriteConcernError):
        return CommitOutcomeUnknownError(
            f"the commit's outcome is unknown ({first_line(exc)}); retry with the same event ids: "
            "an append that applied is then returned as stored, one that did not is written"
        )
    if timed_out:
        return TransactionTimeoutError(
            f"transaction kept failing transiently until the time budget ran out: {exc}"
        )
    if isinstance(exc, ServerSelectionTimeoutError | ConnectionFailure):
        return ConnectionFailedError(f"lost the connection to MongoDB: {first_line(exc)}")
    if isinstance(exc, OperationFailure):
        if exc.code == WRITE_CONFLICT:
            return WriteConflictError(f"write conflict: {first_line(exc)}")
        if exc.code == NO_SUCH_TRANSACTION:
            return TransactionAbortedError(
                f"the transaction was aborted or expired on the server: {first_line(exc)}"
            )
    return TransactionError(f"{type(exc).__name__}: {first_line(exc)}")
