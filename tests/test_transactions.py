from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from eventlab import (
    ConfigurationError,
    DeploymentError,
    MongoConnectionManager,
    MongoEventStore,
    NotAuthorizedError,
    TransactionAbortedError,
    TransactionsUnsupportedError,
    TransactionTimeoutError,
    WriteConflictError,
)
from eventlab._mongo.transaction_policy import map_error
from eventlab._mongo.transactions import run_transaction
from eventlab.embedded import EmbeddedMongo

from .conftest import counter_is_free, make_event, put_one, stream_id


async def _fail(conn: MongoConnectionManager, times: int, command: str, **data: Any) -> None:
    await conn.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": [command], **data},
        }
    )


async def test_transient_errors_rerun_the_callback(connection: MongoConnectionManager) -> None:
    calls = 0
    retries: list[int] = []
    coll = connection.database["tx"]

    async def work(session: Any) -> str:
        nonlocal calls
        calls += 1
        await coll.insert_one({"n": calls}, session=session)
        return "done"

    await coll.insert_one({"warm": True})
    await _fail(connection, 2, "insert", errorCode=112, errorLabels=["TransientTransactionError"])
    result = await run_transaction(
        connection.client, work, on_retry=lambda attempt, exc: retries.append(attempt)
    )
    assert result == "done" and calls == 3 and retries == [1, 2]
    assert (
        await coll.count_documents({"n": {"$exists": True}}) == 1
    )  # aborted attempts left nothing


async def test_unknown_commit_result_retries_the_commit_only(
    connection: MongoConnectionManager,
) -> None:
    calls = 0
    coll = connection.database["tx2"]
    await coll.insert_one({"warm": True})

    async def work(session: Any) -> None:
        nonlocal calls
        calls += 1
        await coll.insert_one({"x": 1}, session=session)

    await _fail(
        connection,
        1,
        "commitTransaction",
        errorCode=91,
        errorLabels=["UnknownTransactionCommitResult"],
    )
    await run_transaction(connection.client, work)
    assert calls == 1
    assert await coll.count_documents({"x": 1}) == 1


async def test_store_retries_transient_failures(tx_store: MongoEventStore) -> None:
    sid = stream_id()
    await put_one(tx_store, make_event(sid, 1))
    await _fail(
        tx_store.connection, 3, "insert", errorCode=112, errorLabels=["TransientTransactionError"]
    )
    stored = await put_one(tx_store, make_event(sid, 2))
    assert stored.version == 2
    positions = [e.position for e in await tx_store.read_all().to_list()]
    assert positions == list(range(positions[0], positions[0] + 2)), (
        "retries must not skip positions"
    )


async def test_time_budget_ends_retries(connection: MongoConnectionManager) -> None:
    coll = connection.database["tx3"]
    await coll.insert_one({"warm": True})
    await _fail(
        connection, 1000, "insert", errorCode=112, errorLabels=["TransientTransactionError"]
    )
    try:
        with pytest.raises(TransactionTimeoutError) as info:
            await run_transaction(
                connection.client,
                lambda s: coll.insert_one({"y": 1}, session=s),
                time_budget=0.3,
            )
        assert isinstance(info.value.__cause__, OperationFailure)
    finally:
        await connection.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


async def test_non_transient_errors_are_mapped(connection: MongoConnectionManager) -> None:
    coll = connection.database["tx4"]
    await coll.insert_one({"warm": True})
    await _fail(connection, 1, "insert", errorCode=251, errorLabels=[])
    with pytest.raises(TransactionAbortedError):
        await run_transaction(connection.client, lambda s: coll.insert_one({}, session=s))

    class Boom(Exception):
        pass

    async def raises(session: Any) -> None:
        await coll.insert_one({"boom": 1}, session=session)
        raise Boom

    with pytest.raises(Boom):
        await run_transaction(connection.client, raises)
    assert await coll.count_documents({"boom": 1}) == 0


def test_map_error() -> None:
    assert isinstance(map_error(OperationFailure("x", code=112)), WriteConflictError)
    assert isinstance(map_error(OperationFailure("x", code=251)), TransactionAbortedError)
    refused = map_error(OperationFailure("x", code=2))
    assert isinstance(refused, DeploymentError) and refused.code == 2
    assert isinstance(map_error(OperationFailure("x", code=13)), NotAuthorizedError)
    plain = ValueError("mine")
    assert map_error(plain) is plain


async def test_standalone_server_needs_opt_in() -> None:
    async with (
        EmbeddedMongo(standalone=True) as server,
        MongoConnectionManager(server.uri, database="solo") as conn,
    ):
        assert not conn.supports_transactions
        with pytest.raises(TransactionsUnsupportedError, match="replica set"):
            await put_one(MongoEventStore(conn), make_event("s", 1))
        with pytest.raises(ConfigurationError):
            await put_one(
                MongoEventStore(conn, require_replica_set=False, positions="transactional"),
                make_event("s", 1),
            )
        store = MongoEventStore(conn, require_replica_set=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = await put_one(store, make_event("s", 1))
        assert any("NOT atomic" in str(w.message) for w in caught)
        assert store.position_strategy == "preallocated" and not store.transactional
        assert first.position == 1
        assert (await put_one(store, make_event("s", 2))).version == 2
        assert store.describe()["transactions"] is False


async def test_a_transaction_cancelled_at_any_moment_leaves_nothing_open(
    tx_store: MongoEventStore,
) -> None:
    """Cancelled before, inside or during the commit of a transaction that holds the counter:
    afterwards no transaction holds it (the cancelled one was aborted, committed, or its
    session ended on the server), so the next writer never waits for the server to expire it."""
    await put_one(tx_store, make_event(stream_id(), 1))
    schema = tx_store._schema
    client = tx_store.connection.client

    async def hold_counter(session: Any) -> None:
        await schema.counters.update_one(
            {"_id": schema.counter_id}, {"$inc": {"touched": 1}}, session=session
        )
        await schema.counters.find_one({"_id": schema.counter_id}, session=session)

    outcomes = set()
    for yields in range(0, 40, 2):  # cancelled after 0, 2, 4, ... turns of the event loop
        task = asyncio.ensure_future(run_transaction(client, hold_counter))
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task})
        outcomes.add("cancelled" if task.cancelled() else "committed")
        assert await counter_is_free(tx_store), f"a transaction was left open ({yields} turns)"
    assert "cancelled" in outcomes


@pytest.mark.parametrize(
    "fault",
    [
        # the commit applies, but its write concern is not confirmed: applied, outcome unknown
        {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}},
        # MaxTimeMSExpired before the commit ran (not retried as a commit): not applied, unknown
        {"errorCode": 50, "errorLabels": ["UnknownTransactionCommitResult"]},
    ],
    ids=["applied", "not-applied"],
)
async def test_an_inc_under_an_unknown_commit_applies_once_when_the_caller_follows_the_table(
    connection: MongoConnectionManager, fault: dict[str, Any]
) -> None:
    from eventlab import CommitOutcomeUnknownError, TransientError, run_unit_of_work

    visits, applied = connection.database["visits"], connection.database["applied"]
    await visits.insert_one({"_id": "home", "n": 0})

    async def count_visit(uow: Any) -> None:
        await visits.update_one({"_id": "home"}, {"$inc": {"n": 1}}, session=uow.session)
        await applied.insert_one({"_id": "visit-42"}, session=uow.session)

    await _fail(connection, 1, "commitTransaction", **fault)
    outcomes: list[str] = []
    while True:  # README, "Errors: what to catch"
        try:
            # No time to retry the commit: its outcome stays unknown, and reaches the caller.
            await run_unit_of_work(connection, count_visit, time_budget=0)
            outcomes.append("committed")
            break
        except TransientError:
            outcomes.append("transient")
        except CommitOutcomeUnknownError:
            outcomes.append("unknown")
            if await applied.find_one({"_id": "visit-42"}):
                break
    assert outcomes[0] == "unknown", "the fault reached the caller as an unknown outcome"
    assert (await visits.find_one({"_id": "home"}) or {})["n"] == 1, "counted once"
    assert await counter_free(connection)


async def counter_free(connection: MongoConnectionManager) -> bool:
    """The unit given up on was ended on the server: nothing it wrote is still held."""
    async with connection.client.start_session() as session:
        await session.start_transaction()
        try:
            await connection.database["visits"].update_one(
                {"_id": "home"}, {"$set": {"probe": 1}}, session=session
            )
        except OperationFailure as exc:
            return exc.code != 112
        finally:
            await session.abort_transaction()
    return True
