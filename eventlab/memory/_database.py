"""The in-memory database every in-memory store shares: tables of committed values, and
transactions that stage their writes and commit them at once.

The rules are MongoDB's, so that a test on memory behaves as the service does:

* a transaction reads its own writes, and a key it has read reads the same until it ends (a
  snapshot, key by key);
* the first transaction to write a key holds it until it ends; a second writer of that key
  gets :class:`~eventlab.WriteConflictError` at once (retryable: the runner reruns its unit of
  work), and so does, at commit, a transaction that read a key another has changed since;
* a session ended by a successor (:meth:`MemoryDatabase.end_session`) aborts its open
  transaction, and that transaction's commit fails.

Everything runs on one event loop: a read, a write or a commit never awaits, so each is atomic
without a lock.
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .._checks import check_callback
from .._errors import TransactionAbortedError, WriteConflictError

Key = tuple[str, Any]
_DELETED = object()


class MemorySession:
    """A client session: what a consumer runs its transactions in, and a successor ends."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"<MemorySession {self.session_id}>"


class MemoryTransaction:
    """One open transaction: its staged writes and the keys it holds."""

    def __init__(self, database: MemoryDatabase, session: MemorySession | None) -> None:
        self.database = database
        self.session_id = session.session_id if session is not None else None
        self.staged: dict[Key, Any] = {}
        self.seen: dict[Key, tuple[int, Any]] = {}
        """(version, value) of each key as this transaction first read it."""
        self.ended = False
        self.killed = False
        self.after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> MemoryTransaction:
        """What ``uow.session`` is on memory: the transaction itself."""
        return self


class MemoryUnitOfWork:
    """The ``uow`` a unit of work's writes join on memory."""

    def __init__(self, transaction: MemoryTransaction) -> None:
        self.session = transaction

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.session.after_commit.append(check_callback(callback))


class MemoryDatabase:
    """Tables of committed values, shared by the in-memory stores of one backend."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, Any]] = defaultdict(dict)
        self._holders: dict[Key, MemoryTransaction] = {}
        self._versions: dict[Key, int] = defaultdict(int)
        self._open: dict[int, MemoryTransaction] = {}
        self._sessions = itertools.count(1)

    # -- sessions and transactions -------------------------------------------------------------

    def new_session(self) -> MemorySession:
        return MemorySession(next(self._sessions))

    def begin(self, session: MemorySession | None = None) -> MemoryTransaction:
        transaction = MemoryTransaction(self, session)
        if transaction.session_id is not None:
            previous = self._open.get(transaction.session_id)
            if previous is not None and not previous.ended:
                self.abort(previous)
            self._open[transaction.session_id] = transaction
        return transaction

    def commit(self, transaction: MemoryTransaction) -> None:
        if transaction.killed:
            self.abort(transaction)
            raise TransactionAbortedError(
                "the transaction was aborted: its session was ended by another process"
            )
        changed = [
            k for k, (version, _) in transaction.seen.items() if self._versions[k] != version
        ]
        if changed:
            self.abort(transaction)
            table, key = changed[0]
            raise WriteConflictError(f"write conflict: {table} {key!r} changed since it was read")
        for (table, key), value in transaction.staged.items():
            self._versions[(table, key)] += 1
            if value is _DELETED:
                self._tables[table].pop(key, None)
            else:
                self._tables[table][key] = value
        self._end(transaction)
        for callback in transaction.after_commit:
            callback()

    def abort(self, transaction: MemoryTransaction) -> None:
        transaction.staged.clear()
        transaction.after_commit.clear()
        self._end(transaction)

    def end_session(self, session_id: Any) -> None:
        """What ``killSessions`` does: abort the session's open transaction, if any."""
        transaction = self._open.get(session_id)
        if transaction is not None and not transaction.ended:
            transaction.killed = True
            self.abort(transaction)
            transaction.ended = True

    def _end(self, transaction: MemoryTransaction) -> None:
        for key in [k for k, holder in self._holders.items() if holder is transaction]:
            del self._holders[key]
        transaction.ended = True
        if (
            transaction.session_id is not None
            and self._open.get(transaction.session_id) is transaction
        ):
            del self._open[transaction.session_id]

    # -- reads and writes ----------------------------------------------------------------------

    def get(self, table: str, key: Any, transaction: MemoryTransaction | None = None) -> Any:
        """The value under ``key`` (a copy): the transaction's own write, else what it read
        first, else the committed one."""
        if transaction is not None:
            if (table, key) in transaction.staged:
                value = transaction.staged[(table, key)]
                return None if value is _DELETED else copy.deepcopy(value)
            if (table, key) not in transaction.seen:
                committed = self._tables[table].get(key)
                transaction.seen[(table, key)] = (self._versions[(table, key)], committed)
            return copy.deepcopy(transaction.seen[(table, key)][1])
        return copy.deepcopy(self._tables[table].get(key))

    def values(self, table: str, transaction: MemoryTransaction | None = None) -> dict[Any, Any]:
        """Every value of a table (copies), the transaction's own writes included."""
        merged = dict(self._tables[table])
        if transaction is not None:
            for (staged_table, key), value in transaction.staged.items():
                if staged_table == table:
                    if value is _DELETED:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
        return copy.deepcopy(merged)

    def table_names(self) -> list[str]:
        return sorted(name for name, table in self._tables.items() if table)

    def drop_table(self, table: str) -> None:
        self._tables.pop(table, None)

    def held(self, table: str, key: Any) -> bool:
        """Whether an open transaction holds a write to ``key``."""
        return (table, key) in self._holders

    def put(
        self, table: str, key: Any, value: Any, transaction: MemoryTransaction | None = None
    ) -> None:
        """Write ``value`` under ``key``: staged in the transaction, or committed at once."""
        self._write(table, key, copy.deepcopy(value), transaction)

    def delete(self, table: str, key: Any, transaction: MemoryTransaction | None = None) -> None:
        self._write(table, key, _DELETED, transaction)

    def _write(
        self, table: str, key: Any, value: Any, transaction: MemoryTransaction | None
    ) -> None:
        holder = self._holders.get((table, key))
        if transaction is not None and transaction.killed:
            raise TransactionAbortedError("the transaction was aborted: its session was ended")
        if holder is not None and holder is not transaction:
            raise WriteConflictError(
                f"write conflict on {table} {key!r}: another transaction holds it"
            )
        if transaction is None:
            self._versions[(table, key)] += 1
            if value is _DELETED:
                self._tables[table].pop(key, None)
            else:
                self._tables[table][key] = value
            return
        self._holders[(table, key)] = transaction
        transaction.staged[(table, key)] = value
