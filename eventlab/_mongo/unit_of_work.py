"""Unit of work over one MongoDB session and transaction."""

from __future__ import annotations

import logging
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from .._core.checks import check_callback
from .._core.errors import ConfigurationError, TransactionsUnsupportedError, UnitOfWorkStateError
from .._core.race_points import UOW_BEFORE_COMMIT
from .._core.store_options import DEFAULT_TIME_BUDGET
from ..ports import UnitOfWork
from .connection import MongoConnectionManager
from .transaction_policy import map_error
from .transactions import commit_or_end, run_transaction, start_transaction

logger = logging.getLogger("eventlab")
T = TypeVar("T")

_TRANSACTIONS_BY_CLIENT: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

_HOW_TO_REPLICA_SET = (
    "MongoDB transactions need a replica set or a sharded cluster. Start a single-node replica "
    "set with `mongod --replSet rs0` and run `rs.initiate()` once (connection string "
    "`mongodb://localhost:27017/?replicaSet=rs0`), or use eventlab's embedded server. "
    "Pass require_replica_set=False to run without transactions (not atomic)."
)


class MongoUnitOfWork:
    """A transaction spanning repositories, the event store and the outbox.

    Two ways to own the session (both from the persistence seed):

    * self-managed: ``MongoUnitOfWork(connection=conn)`` starts a session on entry and ends it
      on exit;
    * client-managed: ``MongoUnitOfWork(session=session)`` uses your session and leaves it open
      (usable for further units of work).

    ``async with uow:`` starts the transaction; ``await uow.commit()`` commits it. Leaving the
    block without committing, or with an exception, aborts. A unit of work is used once.

    Transient failures (write conflicts, elections) abort the transaction and surface as typed
    errors; to retry automatically, run the whole unit with :func:`run_unit_of_work`.
    """

    def __init__(
        self,
        connection: MongoConnectionManager | None = None,
        *,
        session: AsyncClientSession | None = None,
        require_replica_set: bool = True,
        commit_time_budget: float = DEFAULT_TIME_BUDGET,
    ) -> None:
        if (connection is None) == (session is None):
            raise ConfigurationError("give exactly one of connection= or session=")
        self._connection = connection
        self._session = session
        self._owns_session = session is None
        self._require_replica_set = require_replica_set
        self._commit_time_budget = commit_time_budget
        self._transactional = True
        self._state = "new"  # new -> active -> committed/rolled_back -> closed
        self._after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> AsyncClientSession:
        """The session, in its transaction while the unit of work is active."""
        if self._state != "active" or self._session is None:
            raise UnitOfWorkStateError(f"the unit of work is {self._state}, not active")
        return self._session

    @property
    def transactional(self) -> bool:
        """False only with ``require_replica_set=False`` on a standalone server."""
        return self._transactional

    @property
    def committed(self) -> bool:
        return self._state in ("committed", "closed_committed")

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise UnitOfWorkStateError("a unit of work can be entered only once")
        supports = await self._supports_transactions()
        if not supports:
            if self._require_replica_set:
                raise TransactionsUnsupportedError(_HOW_TO_REPLICA_SET)
            warnings.warn(
                "eventlab: no transactions on this server (require_replica_set=False); the unit "
                "of work's writes are applied one by one and are NOT rolled back on error",
                RuntimeWarning,
                stacklevel=2,
            )
            self._transactional = False
        if self._session is None:
            assert self._connection is not None
            self._session = self._connection.client.start_session()
        try:
            if self._transactional:
                if self._session.in_transaction:
                    raise UnitOfWorkStateError("the session already has a transaction in progress")
                await start_transaction(self._session)  # w: "majority", like every other
        except BaseException:
            # __aexit__ does not run when __aenter__ raises: end a session we started here.
            if self._owns_session:
                await self._session.end_session()
                self._session = None
            self._state = "closed"
            raise
        self._state = "active"
        return self

    async def commit(self) -> None:
        """Commit the transaction.

        A commit whose outcome is unknown is retried as a commit (the server applies it at most
        once) for up to ``commit_time_budget`` seconds, then the session is ended on the server
        (its transaction, if still open there, releases its locks) and the commit reported as
        :class:`~eventlab.CommitOutcomeUnknownError`.
        """
        session = self.session
        if UOW_BEFORE_COMMIT.armed:
            await UOW_BEFORE_COMMIT.reach()
        if self._transactional:
            deadline = time.monotonic() + self._commit_time_budget
            try:
                await commit_or_end(session, deadline)
            except PyMongoError as exc:
                self._state = "rolled_back"
                mapped = map_error(exc)
                raise mapped from exc
        self._state = "committed"
        _call(self._after_commit)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once :meth:`commit` has committed (never after a rollback)."""
        self.session  # noqa: B018 - an active unit only: raises UnitOfWorkStateError otherwise
        self._after_commit.append(check_callback(callback))

    async def rollback(self) -> None:
        """Abort the transaction; nothing written in it becomes visible."""
        session = self.session
        if self._transactional and session.in_transaction:
            await session.abort_transaction()
        self._state = "rolled_back"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        try:
            if self._state == "active" and session is not None:
                if self._transactional and session.in_transaction:
                    await session.abort_transaction()
                if exc is None:
                    logger.debug("unit of work left without commit: rolled back")
                self._state = "rolled_back"
        finally:
            if self._owns_session and session is not None:
                await session.end_session()
            self._state = "closed_committed" if self._state == "committed" else "closed"

    async def _supports_transactions(self) -> bool:
        if self._connection is not None:
            if not self._connection.is_connected:
                await self._connection.connect()
            return self._connection.supports_transactions
        assert self._session is not None
        client = self._session.client
        known = _TRANSACTIONS_BY_CLIENT.get(client)
        if known is None:
            # Once per client, not once per unit of work: a deployment does not change kind.
            hello: dict[str, Any] = await client.admin.command("hello")
            known = bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
            _TRANSACTIONS_BY_CLIENT[client] = known
        return known


class _RunnerUnitOfWork:
    """What :func:`run_unit_of_work` hands its callback: the session in the runner's
    transaction. One per attempt: a rerun gets a new one, so what an attempt that did not
    commit registered for after its commit is dropped with it."""

    def __init__(self, session: AsyncClientSession) -> None:
        self.session = session
        self.committing = False
        self.callbacks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(check_callback(callback))


def _call(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


async def run_unit_of_work(
    connection: MongoConnectionManager,
    work: Callable[[UnitOfWork], Awaitable[T]],
    *,
    time_budget: float = DEFAULT_TIME_BUDGET,
    session: AsyncClientSession | None = None,
) -> T:
    """Run ``work(uow)`` in a transaction and commit it, retrying per the drivers' rules.

    ``TransientTransactionError`` reruns ``work`` from the start; an unknown commit result
    retries the commit only; both within ``time_budget`` seconds. ``work`` receives an object
    with ``.session`` to pass as ``uow=`` to repositories, the event store and the outbox, and
    must not call ``commit``: returning commits. Because it may run more than once, ``work``
    must be idempotent apart from its writes in the session (no emails sent from inside it).
    ``session``: run in this session (left open) instead of a new one.
    """
    if not connection.is_connected:
        await connection.connect()
    if not connection.supports_transactions:
        raise TransactionsUnsupportedError(_HOW_TO_REPLICA_SET)
    attempts: list[_RunnerUnitOfWork] = []

    async def attempt(in_transaction: AsyncClientSession) -> T:
        uow = _RunnerUnitOfWork(in_transaction)
        attempts.append(uow)
        result = await work(uow)
        if UOW_BEFORE_COMMIT.armed:
            await UOW_BEFORE_COMMIT.reach()
        uow.committing = in_transaction.in_transaction  # not a unit that ended it itself
        return result

    result = await run_transaction(
        connection.client,
        attempt,
        session=session,
        time_budget=time_budget,
        retry_typed_errors=True,
    )
    if attempts and attempts[-1].committing:  # the attempt whose transaction committed
        _call(attempts[-1].callbacks)
    return result
