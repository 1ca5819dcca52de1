"""Running a callback in a MongoDB transaction with the drivers' retry rules.

The rules (MongoDB drivers' transactions specification, also behind ``with_transaction``), as
``_transaction_policy`` states them: a ``TransientTransactionError`` reruns the **callback**, an
``UnknownTransactionCommitResult`` retries the **commit** only, both within a time budget and
with jittered backoff; every transaction commits with ``w: "majority"``; a commit given up on
is ended on the server. Because the callback may run more than once, it must be idempotent
apart from its writes in the session (no external side effects).

This module is the source of truth: ``_transactions_sync.py`` is generated from it by
``tools/synchro.py`` (the way PyMongo generates its synchronous API), and a test checks that
the generated file is up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pymongo
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ExecutionTimeout, PyMongoError

from .._core import telemetry as telemetry
from .._core.race_points import TRANSACTION_BEFORE_COMMIT as BEFORE_COMMIT
from .._core.race_points import TRANSACTION_LISTED as LISTED
from .._core.retry import backoff_delay
from .._core.store_options import DEFAULT_TIME_BUDGET
from . import liveness as liveness
from .transaction_policy import (
    END_SESSION_TIMEOUT,
    MAJORITY,
    UNKNOWN_COMMIT,
    has_label,
    raise_mapped,
    retryable,
    transient,
)

T = TypeVar("T")


async def start_transaction(session: AsyncClientSession) -> None:
    """Start a transaction with eventlab's policy: commits with ``w: "majority"``.

    The session is first listed in the process registry (``_liveness``), once per server
    session, so that if this process dies with the transaction open another process can end
    it; the listing is acknowledged before the transaction can take any lock.
    """
    listing = liveness.listing(session)
    while listing is not None:
        try:
            result = await listing.collection(session.client).update_one(
                listing.filter, listing.update, upsert=listing.create
            )
        except BaseException as exc:  # cancelled too: the session must not stay marked listed
            listing.failed(exc)
            if not isinstance(exc, PyMongoError):
                raise
            break
        listing.written(result)
        listing = liveness.listing(session)
    if LISTED.armed:
        await LISTED.reach()
    await session.start_transaction(write_concern=MAJORITY)


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

    :param client: the ``MongoClient`` that starts the session (unused if ``session``).
    :param session: run in this session (left open) instead of a new one.
    :param time_budget: seconds after which a transient failure is no longer retried and
        :class:`~eventlab.TransactionTimeoutError` is raised.
    :param on_retry: called with (attempt, error) before each retry, for metrics.
    :param retry_typed_errors: also rerun the callback when it raises one of eventlab's typed
        errors whose driver cause is labelled transient, or that is retryable in its own
        right. For callbacks made of eventlab calls in a caller's unit of work
        (:func:`~eventlab.run_unit_of_work`): those calls raise typed errors, and a write
        conflict among them must still be retried. eventlab's own internal transactions leave
        it off: their typed errors are decisions, not conflicts.
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
    retry_typed_errors: bool,
) -> T:
    deadline = time.monotonic() + time_budget
    attempt = 0
    stuck = liveness.Stuck(session.client)  # failing on for a second: have the dead reaped
    while True:
        if attempt:
            await asyncio.sleep(backoff_delay(attempt))
        await start_transaction(session)
        try:
            result = await callback(session)
        except BaseException as exc:  # a cancelled task too: never leave the transaction open
            if not isinstance(exc, Exception):
                await abandon(session)
                raise
            if session.in_transaction:
                await session.abort_transaction()
            if not transient(exc, deadline, typed=retry_typed_errors):
                raise_mapped(exc)
            attempt += 1
            stuck.failed()
            _notify(on_retry, attempt, exc)
            continue
        if not session.in_transaction:
            return result  # the callback ended the transaction itself: nothing to commit
        if BEFORE_COMMIT.armed:
            await BEFORE_COMMIT.reach()
        try:
            await commit_or_end(session, deadline)
        except PyMongoError as exc:
            if not transient(exc, deadline):
                raise_mapped(exc)
            attempt += 1
            stuck.failed()
            _notify(on_retry, attempt, exc)
            continue
        except BaseException:
            await abandon(session)  # cancelled mid-commit: the outcome is unknown
            raise
        return result


async def commit_or_end(session: AsyncClientSession, deadline: float) -> None:
    """Commit (see :func:`commit_with_retry`); when the outcome is still unknown at the
    deadline, end the session on the server before raising."""
    try:
        await commit_with_retry(session, deadline)
    except PyMongoError as exc:
        if has_label(exc, UNKNOWN_COMMIT):  # given up on: it may still be open there
            await end_on_server(session)
        raise


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
            if has_label(exc, UNKNOWN_COMMIT):
                telemetry.unknown_commit()
            if isinstance(exc, ExecutionTimeout) or not retryable(exc, UNKNOWN_COMMIT, deadline):
                raise
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt))


async def end_on_server(session: AsyncClientSession) -> None:
    """Best effort: end the session on the server, which aborts its transaction if still open.

    After giving up on a commit whose outcome is unknown, the transaction may still be open
    on the server, holding its locks (the position counter among them) until the server
    expires it, by default a minute later: every appender would wait for it.
    """
    with contextlib.suppress(Exception), pymongo.timeout(END_SESSION_TIMEOUT):
        await session.client.admin.command("killSessions", [session.session_id])


async def abandon(session: AsyncClientSession) -> None:
    """A transaction interrupted by cancellation (or another ``BaseException``): end its
    session on the server and never hand that session out again.

    An abort sent after a cancelled operation can be refused while the server still runs that
    operation, and a commit cut off mid-request leaves its outcome unknown; either way the
    transaction could stay open on the server, holding its documents (a checkpoint, the
    counter) until the server expires it. Ending the session settles it now.
    """
    server_session = getattr(session, "_server_session", None)
    if server_session is not None:
        server_session.mark_dirty()  # the driver's own rule for a session in doubt
    await end_on_server(session)
    with contextlib.suppress(Exception):
        if session.in_transaction:
            await session.abort_transaction()  # client-side state only: the server's is gone


def _notify(
    on_retry: Callable[[int, BaseException], None] | None, attempt: int, exc: BaseException
) -> None:
    if on_retry is not None:
        on_retry(attempt, exc)
