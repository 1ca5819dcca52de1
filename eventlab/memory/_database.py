"""The in-memory database every in-memory store shares: tables of documents by key, and
transactions with MongoDB's snapshot isolation, no stricter and no weaker.

* A transaction reads a **snapshot** taken at its first operation, plus its own writes. Reads
  never conflict and are never validated at commit: two transactions that read what the other
  writes both commit (write skew), exactly where MongoDB lets them.
* A **write** to a document another open transaction has written, or one committed after this
  transaction's snapshot, is a :class:`~eventlab.WriteConflictError` at once; an **insert**
  whose key another open transaction has inserted is one too, while a key a committed document
  visible to the snapshot holds is a duplicate key (:class:`DuplicateKey`).
* **Any failed write dooms the transaction**, as MongoDB aborts it on the server: its writes
  are dropped and its locks released at once, and every later operation, the commit included,
  fails with :class:`~eventlab.TransactionAbortedError` (retryable: the runner reruns the unit
  of work). A session ended by a successor (:meth:`MemoryDatabase.end_session`, what
  ``killSessions`` does) dooms its open transaction the same way.
* A **plain write** (no transaction) to a document an open transaction holds waits until that
  transaction ends, as it does on MongoDB: ``await database.until_free(table, key)`` before it.

Everything runs on one event loop: a read, a write or a commit never awaits, so each is atomic
without a lock. Unique indexes are tables of their own (a store inserts into each), so a
duplicate or a conflict on any unique key behaves as on MongoDB.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from .._core.checks import check_callback
from .._core.errors import TransactionAbortedError, WriteConflictError

Key = tuple[str, Any]
ABSENT: Any = object()
"""A key with no document (never written, or deleted)."""
_PRUNE_EVERY = 1024
State = Literal["open", "doomed", "committed", "aborted"]


class DuplicateKey(Exception):
    """An insert met a committed document under the same unique key (MongoDB's E11000).

    Private control flow: the in-memory stores turn it into what MongoDB's stores make of a
    duplicate key (an idempotent retry, a version conflict, a filled position)."""

    def __init__(self, table: str, key: Any) -> None:
        super().__init__(f"duplicate key in {table}: {key!r}")
        self.table = table
        self.key = key


class MemorySession:
    """A client session: what a consumer runs its transactions in, and a successor ends."""

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"<MemorySession {self.session_id}>"


class MemoryTransaction:
    """One transaction: its snapshot, its staged writes (the documents it holds) and its state."""

    def __init__(self, database: MemoryDatabase, session: MemorySession | None) -> None:
        self.database = database
        self.session_id = session.session_id if session is not None else None
        self.snapshot: int | None = None
        """The commit clock its reads see, taken at its first operation."""
        self.staged: dict[Key, Any] = {}
        self.state: State = "open"
        self.reason = ""
        """Why a doomed transaction was doomed (the message of its later errors)."""
        self.after_commit: list[Callable[[], None]] = []
        self._finished: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<MemoryTransaction {self.state} snapshot={self.snapshot}>"

    @property
    def session(self) -> MemoryTransaction:
        """What ``uow.session`` is on memory: the transaction itself."""
        return self

    @property
    def ended(self) -> bool:
        """Committed or aborted by its owner (a doomed one still has to be aborted)."""
        return self.state in ("committed", "aborted")

    async def released(self) -> None:
        """Return once the transaction holds nothing any more (doomed or ended)."""
        if self.state == "open":
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()

    def _release(self) -> None:
        if self._finished is not None:
            self._finished.set()


class MemoryUnitOfWork:
    """The ``uow`` a unit of work's writes join on memory."""

    def __init__(self, transaction: MemoryTransaction) -> None:
        self.session = transaction

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.session.after_commit.append(check_callback(callback))


class MemoryDatabase:
    """Tables of committed documents, kept with the older versions that open snapshots still
    read, shared by the in-memory stores of one backend."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[Any, Any]] = defaultdict(dict)
        self._stamps: dict[Key, int] = {}
        """When each key was last committed (the commit clock)."""
        self._older: dict[Key, list[tuple[int, Any]]] = {}
        """Replaced versions, (stamp, value), oldest first, while an open snapshot may read them."""
        self._clock = 0
        self._holders: dict[Key, MemoryTransaction] = {}
        self._reading: set[MemoryTransaction] = set()
        """Open transactions that have a snapshot."""
        self._open: dict[int, MemoryTransaction] = {}
        self._sessions = itertools.count(1)
        self._kept = 0

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
        """Apply the transaction's writes at one new commit clock; a doomed transaction's
        commit fails (:class:`~eventlab.TransactionAbortedError`) and applies nothing."""
        if transaction.state != "open":
            reason = transaction.reason or f"the transaction was {transaction.state} already"
            self.abort(transaction)
            raise TransactionAbortedError(reason)
        self._reading.discard(transaction)
        if transaction.staged:
            stamp = self._tick()
            for (table, key), value in transaction.staged.items():
                self._install(table, key, value, stamp)
        self._finish(transaction, "committed")
        for callback in transaction.after_commit:
            callback()

    def abort(self, transaction: MemoryTransaction) -> None:
        """End the transaction without applying anything (idempotent)."""
        if not transaction.ended:
            self._finish(transaction, "aborted")

    def end_session(self, session_id: Any) -> None:
        """What ``killSessions`` does: doom the session's open transaction, if any."""
        transaction = self._open.get(session_id)
        if transaction is not None and transaction.state == "open":
            self._doom(transaction, "the transaction was aborted: its session was ended")

    def _doom(self, transaction: MemoryTransaction, reason: str) -> None:
        """Abort on the server's side: writes dropped, locks released; the owner learns it at
        its next operation or its commit."""
        transaction.state = "doomed"
        transaction.reason = reason
        self._drop(transaction)

    def _finish(self, transaction: MemoryTransaction, state: State) -> None:
        transaction.state = state
        self._drop(transaction)
        if transaction.session_id is not None and self._open.get(transaction.session_id) is (
            transaction
        ):
            del self._open[transaction.session_id]

    def _drop(self, transaction: MemoryTransaction) -> None:
        for key in transaction.staged:
            if self._holders.get(key) is transaction:
                del self._holders[key]
        if transaction.state != "committed":
            transaction.staged.clear()
            transaction.after_commit.clear()
        self._reading.discard(transaction)
        transaction._release()
        if not self._reading:
            self._older.clear()
            self._kept = 0

    def _usable(self, transaction: MemoryTransaction) -> int:
        """The transaction's snapshot (taken now, at its first operation), or the error of a
        transaction that can do nothing more."""
        if transaction.state != "open":
            raise TransactionAbortedError(
                transaction.reason or f"the transaction was {transaction.state} already"
            )
        if transaction.snapshot is None:
            transaction.snapshot = self._clock
            self._reading.add(transaction)
        return transaction.snapshot

    # -- versions --------------------------------------------------------------------------------

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _install(self, table: str, key: Any, value: Any, stamp: int) -> None:
        rows = self._tables[table]
        if self._reading:  # an open snapshot may still read the version this replaces
            self._older.setdefault((table, key), []).append(
                (self._stamps.get((table, key), 0), rows.get(key, ABSENT))
            )
            self._kept += 1
            if self._kept >= _PRUNE_EVERY:
                self._prune()
        if value is ABSENT:
            rows.pop(key, None)
        else:
            rows[key] = value
        self._stamps[(table, key)] = stamp

    def _prune(self) -> None:
        """Forget versions no open snapshot can read any more."""
        oldest = min(t.snapshot or 0 for t in self._reading)
        for key, versions in list(self._older.items()):
            needed = [i for i, (stamp, _) in enumerate(versions) if stamp <= oldest]
            if self._stamps.get(key, 0) <= oldest:
                del self._older[key]  # every open snapshot sees the latest
            else:
                self._older[key] = versions[needed[-1] :] if needed else versions
        self._kept = sum(len(v) for v in self._older.values())

    def _visible(self, table: str, key: Any, snapshot: int | None) -> Any:
        """The committed value of ``key`` a snapshot sees (``None``: the latest), or ABSENT."""
        if snapshot is None or self._stamps.get((table, key), 0) <= snapshot:
            return self._tables[table].get(key, ABSENT)
        for stamp, value in reversed(self._older.get((table, key), ())):
            if stamp <= snapshot:
                return value
        return ABSENT

    # -- reads -----------------------------------------------------------------------------------

    def peek(self, table: str, key: Any, transaction: MemoryTransaction | None = None) -> Any:
        """The value under ``key`` as the transaction sees it (its own write, else its
        snapshot; no transaction: the latest commit), ``None`` when there is none. Not a copy:
        the caller must not change it."""
        if transaction is None:
            return self._tables[table].get(key)
        value = self._seen(table, key, transaction, self._usable(transaction))
        return None if value is ABSENT else value

    def _seen(self, table: str, key: Any, transaction: MemoryTransaction, snapshot: int) -> Any:
        if (table, key) in transaction.staged:
            return transaction.staged[(table, key)]
        return self._visible(table, key, snapshot)

    def get(self, table: str, key: Any, transaction: MemoryTransaction | None = None) -> Any:
        """A copy of the value under ``key`` as the transaction sees it (see :meth:`peek`)."""
        return copy.deepcopy(self.peek(table, key, transaction))

    def view(self, table: str, transaction: MemoryTransaction | None = None) -> Mapping[Any, Any]:
        """Every value of a table as the transaction sees it. Not copies."""
        if transaction is None:
            return self._tables[table]
        snapshot = self._usable(transaction)
        merged = dict(self._tables[table])
        for (older_table, key), _ in self._older.items():
            if older_table == table and self._stamps.get((table, key), 0) > snapshot:
                value = self._visible(table, key, snapshot)
                if value is ABSENT:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        for (staged_table, key), value in transaction.staged.items():
            if staged_table == table:
                if value is ABSENT:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        return merged

    def values(self, table: str, transaction: MemoryTransaction | None = None) -> dict[Any, Any]:
        """Copies of every value of a table as the transaction sees it."""
        return copy.deepcopy(dict(self.view(table, transaction)))

    def keys_between(self, table: str, low: int, high: int) -> Iterator[int]:
        """The committed int keys of a table in ``(low, high]``, in order (for log reads)."""
        rows = self._tables[table]
        if high - low <= len(rows):
            return (k for k in range(low + 1, high + 1) if k in rows)
        return iter(sorted(k for k in rows if low < k <= high))

    def table_names(self) -> list[str]:
        return sorted(name for name, table in self._tables.items() if table)

    def drop_table(self, table: str) -> None:
        self._tables.pop(table, None)
        for key in [k for k in self._stamps if k[0] == table]:
            del self._stamps[key]
            self._older.pop(key, None)

    def held(self, table: str, key: Any) -> bool:
        """Whether an open transaction holds a write to ``key``."""
        return (table, key) in self._holders

    async def until_free(self, table: str, key: Any) -> None:
        """Wait while an open transaction holds ``key``: a plain write on MongoDB waits for it."""
        while (holder := self._holders.get((table, key))) is not None:
            await holder.released()

    # -- writes ----------------------------------------------------------------------------------

    def put(
        self, table: str, key: Any, value: Any, transaction: MemoryTransaction | None = None
    ) -> None:
        """Write ``value`` under ``key`` (replacing or creating it): staged in the transaction,
        or committed at once."""
        self._write(table, key, copy.deepcopy(value), transaction, insert=False)

    def insert(
        self, table: str, key: Any, value: Any, transaction: MemoryTransaction | None = None
    ) -> None:
        """Create ``key`` with ``value``; :class:`DuplicateKey` when a document visible to the
        transaction is there (the transaction is then doomed)."""
        self._write(table, key, copy.deepcopy(value), transaction, insert=True)

    def delete(self, table: str, key: Any, transaction: MemoryTransaction | None = None) -> None:
        """Remove ``key``. Deleting what the transaction does not see writes nothing."""
        if self.peek(table, key, transaction) is None:
            return
        self._write(table, key, ABSENT, transaction, insert=False)

    def _write(
        self,
        table: str,
        key: Any,
        value: Any,
        transaction: MemoryTransaction | None,
        *,
        insert: bool,
    ) -> None:
        holder = self._holders.get((table, key))
        if transaction is None:
            if holder is not None:  # a plain write should have waited (until_free)
                raise WriteConflictError(
                    f"write conflict on {table} {key!r}: an open transaction holds it"
                )
            if insert and key in self._tables[table]:
                raise DuplicateKey(table, key)
            self._install(table, key, value, self._tick())
            return
        snapshot = self._usable(transaction)
        if holder is not None and holder is not transaction:
            self._conflict(transaction, f"{table} {key!r}: another transaction holds it")
        if holder is None and self._stamps.get((table, key), 0) > snapshot:
            self._conflict(transaction, f"{table} {key!r} changed after this snapshot")
        if insert and self._seen(table, key, transaction, snapshot) is not ABSENT:
            self._doom(transaction, f"the transaction was aborted: duplicate key in {table}")
            raise DuplicateKey(table, key)
        self._holders[(table, key)] = transaction
        transaction.staged[(table, key)] = value

    def _conflict(self, transaction: MemoryTransaction, what: str) -> None:
        message = f"write conflict on {what}"
        self._doom(transaction, f"the transaction was aborted after a {message}")
        raise WriteConflictError(message)
