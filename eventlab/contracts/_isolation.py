"""Units of work under MongoDB's snapshot isolation, no stricter and no weaker: what the
in-memory backend models and MongoDB does.

Not stricter: reads are never validated, so two units that read what the other writes both
commit (write skew). Not weaker: two writers of one document conflict at once; a failed write
dooms its transaction; an insert meeting another transaction's uncommitted insert of the same
key is a write conflict, not a duplicate; a snapshot is taken at the first operation and a
write to a document committed after it conflicts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from .._core.errors import (
    ConcurrencyError,
    EventlabError,
    TransactionAbortedError,
    WriteConflictError,
)
from ..ports import CheckpointStore, EventStore, UnitOfWork
from ._support import NeedsAStore, contract_event, unique


async def _position(store: EventStore, name: str) -> int:
    return await store.backend.checkpoints().position(name)


async def _a_checkpoint_at_one(store: EventStore) -> tuple[CheckpointStore, str]:
    """The store's checkpoints, and a new consumer's name saved there at position 1."""
    checkpoints = store.backend.checkpoints()
    name = unique("x")
    await checkpoints.save(name, 1)
    return checkpoints, name


@contextlib.contextmanager
def _noting_errors(seen: list[type[Exception]]) -> Iterator[None]:
    """Note the type of an eventlab error raised inside, and let it go on (to the runner)."""
    try:
        yield
    except EventlabError as exc:
        seen.append(type(exc))
        raise


async def _second_tries_while_first_holds(
    store: EventStore,
    first_write: Callable[[UnitOfWork], Awaitable[None]],
    second_write: Callable[[UnitOfWork], Awaitable[None]],
) -> tuple[list[type[Exception]], list[Any]]:
    """Run two units: the first writes, then holds its transaction open while the second
    tries its write; a rerun of the second waits until the first has committed. The errors the
    second met, in order, and both units' outcomes (an exception is returned, not raised)."""
    first_wrote, second_tried, first_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[type[Exception]] = []

    async def first(uow: UnitOfWork) -> None:
        await first_write(uow)
        first_wrote.set()
        await second_tried.wait()  # holds its write while the second one tries

    async def second(uow: UnitOfWork) -> None:
        await (first_done.wait() if seen else first_wrote.wait())
        try:
            with _noting_errors(seen):
                await second_write(uow)
        finally:
            second_tried.set()

    async def first_then_done() -> None:
        await store.backend.run(first)
        first_done.set()

    outcomes = await asyncio.gather(
        first_then_done(), store.backend.run(second), return_exceptions=True
    )
    return seen, list(outcomes)


class IsolationContract(NeedsAStore):
    """Snapshot isolation, as MongoDB gives it."""

    async def test_write_skew_commits_on_both_sides(self, contract_store: EventStore) -> None:
        """Each unit reads both checkpoints, then writes its own from what it read: neither
        sees the other's write, and both commit (serializable isolation would refuse one)."""
        checkpoints = contract_store.backend.checkpoints()
        x, y = unique("x"), unique("y")
        await checkpoints.save(x, 1)
        await checkpoints.save(y, 1)
        read = {x: asyncio.Event(), y: asyncio.Event()}
        attempts = {x: 0, y: 0}

        def deciding(mine: str, other: str) -> Any:
            async def work(uow: UnitOfWork) -> None:
                attempts[mine] += 1
                mine_cp = await checkpoints.get(mine, uow)
                other_cp = await checkpoints.get(other, uow)
                assert mine_cp is not None and other_cp is not None
                read[mine].set()
                await read[other].wait()  # both have read before either writes
                await checkpoints.save(mine, mine_cp.position + other_cp.position + 10, uow=uow)

            return work

        await asyncio.gather(
            contract_store.backend.run(deciding(x, y)), contract_store.backend.run(deciding(y, x))
        )
        assert attempts == {x: 1, y: 1}, "a unit was rerun: reads were validated"
        assert (await _position(contract_store, x), await _position(contract_store, y)) == (12, 12)

    async def test_two_writers_of_one_document_conflict_at_once(
        self, contract_store: EventStore
    ) -> None:
        checkpoints, x = await _a_checkpoint_at_one(contract_store)

        async def first(uow: UnitOfWork) -> None:
            await checkpoints.save(x, 5, uow=uow)

        async def second(uow: UnitOfWork) -> None:
            await checkpoints.save(x, 7, uow=uow)

        seen, outcomes = await _second_tries_while_first_holds(contract_store, first, second)
        assert outcomes == [None, None] and seen == [WriteConflictError]
        assert await _position(contract_store, x) == 7

    async def test_a_failed_write_dooms_the_transaction(self, contract_store: EventStore) -> None:
        """A duplicate key (an append at version 0 to a stream that exists) aborts the
        transaction on the server: the unit's next operation fails, nothing of it is stored,
        and the runner runs it again."""
        checkpoints = contract_store.backend.checkpoints()
        sid, name = unique(), unique("cp")
        await contract_store.append(sid, [contract_event(sid)], 0)
        later: list[type[Exception]] = []
        attempts = 0

        async def work(uow: UnitOfWork) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                return
            with pytest.raises(ConcurrencyError):
                await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            with _noting_errors(later):
                await checkpoints.save(name, 5, uow=uow)

        await contract_store.backend.run(work)
        assert later == [TransactionAbortedError] and attempts == 2
        assert await checkpoints.get(name) is None
        assert [e.version for e in await contract_store.read_stream(sid)] == [1]

    async def test_a_doomed_transaction_does_not_commit(self, contract_store: EventStore) -> None:
        sid, other = unique(), unique()
        await contract_store.append(sid, [contract_event(sid)], 0)
        attempts = 0

        async def work(uow: UnitOfWork) -> str:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                await contract_store.append(other, [contract_event(other)], 0, uow=uow)
                with pytest.raises(ConcurrencyError):
                    await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)
            return "committed"  # the first attempt's commit fails: the runner runs it again

        assert await contract_store.backend.run(work) == "committed" and attempts == 2
        assert await contract_store.read_stream(other) == []

    async def test_an_insert_meeting_an_uncommitted_one_conflicts_then_is_a_duplicate(
        self, contract_store: EventStore
    ) -> None:
        """Two units start one stream: while the first holds its uncommitted version 1, the
        second's insert is a write conflict (rerun); after the first commits, it is a version
        conflict (a duplicate key on a committed document)."""
        sid = unique()

        async def insert(uow: UnitOfWork) -> None:
            await contract_store.append(sid, [contract_event(sid)], 0, uow=uow)

        seen, outcomes = await _second_tries_while_first_holds(contract_store, insert, insert)
        assert outcomes[0] is None and isinstance(outcomes[1], ConcurrencyError)
        assert seen == [WriteConflictError, ConcurrencyError]
        assert len(await contract_store.read_stream(sid)) == 1

    async def test_a_snapshot_is_repeatable_and_a_later_commit_conflicts(
        self, contract_store: EventStore
    ) -> None:
        checkpoints, x = await _a_checkpoint_at_one(contract_store)
        seen: list[int] = []
        errors: list[type[Exception]] = []

        async def work(uow: UnitOfWork) -> None:
            before = await checkpoints.get(x, uow)
            if not seen:  # committed after this transaction's snapshot, outside it
                await checkpoints.save(x, 2)
            after = await checkpoints.get(x, uow)
            assert before is not None and after is not None
            seen.extend([before.position, after.position])
            with _noting_errors(errors):
                await checkpoints.save(x, 3, uow=uow)

        await contract_store.backend.run(work)
        assert seen == [1, 1, 2, 2], "a snapshot read changed, or a rerun missed the commit"
        assert errors == [WriteConflictError]
        assert await _position(contract_store, x) == 3
