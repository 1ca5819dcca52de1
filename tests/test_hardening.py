"""Hardening around the core: each test names the defect it guards against."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession

from eventlab import (
    CommitOutcomeUnknownError,
    ConcurrencyError,
    DuplicateEventError,
    MongoConnectionManager,
    MongoEventStore,
    MongoRepository,
    MongoUnitOfWork,
    UniqueConstraintError,
    run_unit_of_work,
)

from .conftest import counter_is_free, make_event, put_one, stream_id


class Account(BaseModel):
    id: str
    email: str
    version: int = 0


@pytest.fixture
async def accounts(connection: MongoConnectionManager) -> MongoRepository[Account]:
    repo = MongoRepository(connection=connection, collection="accounts", model_cls=Account)
    await repo.collection.create_index("email", unique=True, name="email_unique")
    return repo


async def _fail(conn: MongoConnectionManager, times: int, command: str, **data: Any) -> None:
    await conn.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": times},
            "data": {"failCommands": [command], **data},
        }
    )


async def _fail_off(conn: MongoConnectionManager) -> None:
    await conn.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


# -- the repository inside a unit of work ------------------------------------------------------


async def test_adding_an_existing_id_in_a_unit_of_work_is_a_conflict(
    connection: MongoConnectionManager, accounts: MongoRepository[Account]
) -> None:
    await accounts.add(Account(id="a-1", email="one@example.com"))
    with pytest.raises(ConcurrencyError) as info:
        async with MongoUnitOfWork(connection) as uow:
            await accounts.add(Account(id="a-1", email="other@example.com"), uow=uow)
    assert info.value.actual_version == 1  # type: ignore[attr-defined]
    attempts = 0

    async def work(uow: Any) -> None:
        nonlocal attempts
        attempts += 1
        await accounts.add(Account(id="a-1", email="third@example.com"), uow=uow)

    with pytest.raises(ConcurrencyError):
        await run_unit_of_work(connection, work)
    assert attempts == 1, "a conflict is the caller's to decide, never rerun"
    assert (await accounts.get("a-1")) == Account(id="a-1", email="one@example.com", version=1)


async def test_another_unique_index_is_not_a_version_conflict(
    accounts: MongoRepository[Account],
) -> None:
    await accounts.add(Account(id="a-1", email="taken@example.com"))
    with pytest.raises(UniqueConstraintError, match="email") as info:
        await accounts.add(Account(id="a-2", email="taken@example.com"))
    assert info.value.index == "email_1"
    assert await accounts.get("a-2") is None


async def test_delete_of_a_versioned_entity_checks_the_version(
    accounts: MongoRepository[Account],
) -> None:
    saved = await accounts.add(Account(id="a-1", email="x@example.com"))
    await accounts.add(saved)  # now at version 2
    with pytest.raises(ConcurrencyError):
        await accounts.delete("a-1", expected_version=1)
    assert await accounts.get("a-1") is not None
    assert await accounts.delete("a-1", expected_version=2) is True
    assert await accounts.delete("a-1", expected_version=2) is False  # gone: nothing to check


# -- the unit of work --------------------------------------------------------------------------


async def test_unit_of_work_commit_retry_is_bounded(connection: MongoConnectionManager) -> None:
    store = MongoEventStore(connection)
    await store.count()
    await _fail(
        connection,
        1000,
        "commitTransaction",
        errorCode=50,
        errorLabels=["UnknownTransactionCommitResult"],
    )
    try:
        with pytest.raises(CommitOutcomeUnknownError, match="same event ids"):
            async with MongoUnitOfWork(connection, commit_time_budget=1) as uow:
                await put_one(store, make_event(stream_id(), 1), uow=uow)
                await uow.commit()
    finally:
        await _fail_off(connection)
    assert await counter_is_free(store), "the given-up transaction still holds the counter"


async def test_a_failed_start_ends_the_session(
    connection: MongoConnectionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[AsyncClientSession] = []
    original = connection.client.start_session

    def tracking_start_session(**kwargs: Any) -> AsyncClientSession:
        session = original(**kwargs)
        sessions.append(session)
        return session

    async def refuse(self: AsyncClientSession, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("start_transaction failed")

    monkeypatch.setattr(connection.client, "start_session", tracking_start_session)
    monkeypatch.setattr(AsyncClientSession, "start_transaction", refuse)
    with pytest.raises(RuntimeError, match="start_transaction failed"):
        async with MongoUnitOfWork(connection):
            pass
    assert len(sessions) == 1 and sessions[0].has_ended


async def test_transaction_support_is_asked_once_per_client(mongo_uri: str) -> None:
    hellos: list[str] = []

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            if event.command_name.lower() in ("hello", "ismaster"):
                hellos.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, event_listeners=[Listener()]
    )
    try:
        for _ in range(3):
            async with client.start_session() as session, MongoUnitOfWork(session=session):
                pass
    finally:
        await client.close()
    assert len(hellos) == 1


# -- idempotency: what "the same event" means ----------------------------------------------------


async def test_a_retry_with_fresh_metadata_is_idempotent(store: MongoEventStore) -> None:
    sid = stream_id()
    event = make_event(sid, 1)
    first = await store.append(sid, [event], 0, metadata={"trace_id": "t-1"})
    retry = replace(event, metadata={"trace_id": "t-2"}, occurred_at=event.occurred_at)
    again = await store.append(sid, [retry], 0, metadata={"trace_id": "t-2"})
    assert [e.event_id for e in again] == [e.event_id for e in first]
    assert again[0].metadata["trace_id"] == "t-1", "the stored copy is returned"
    assert len(await store.read_stream(sid)) == 1


async def test_duplicate_error_names_the_ids_that_differ(store: MongoEventStore) -> None:
    sid = stream_id()
    same, changed = make_event(sid, 1), make_event(sid, 2)
    await store.append(sid, [same, changed], 0)
    with pytest.raises(DuplicateEventError) as info:
        await store.append(sid, [same, replace(changed, payload={"n": "other"})], 0)
    assert info.value.event_ids == [changed.event_id]


# -- commit outcomes -----------------------------------------------------------------------------


async def test_an_unknown_commit_outcome_is_its_own_error_and_a_retry_settles_it(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, transaction_time_budget=1)
    await store.count()
    sid = stream_id()
    event = make_event(sid, 1)
    await _fail(
        connection,
        1000,
        "commitTransaction",
        errorCode=50,
        errorLabels=["UnknownTransactionCommitResult"],
    )
    try:
        with pytest.raises(CommitOutcomeUnknownError):
            await put_one(store, event)
    finally:
        await _fail_off(connection)
    stored = await put_one(store, event)  # the documented retry: same event id
    assert stored.event_id == event.event_id
    assert [e.event_id for e in await store.read_stream(sid)] == [event.event_id]


@pytest.mark.parametrize(
    ("code", "labels"),
    [
        (91, ["UnknownTransactionCommitResult"]),
        (189, ["UnknownTransactionCommitResult"]),
        (11602, []),
    ],
)
async def test_one_commit_fault_stalls_nobody(
    connection: MongoConnectionManager, code: int, labels: list[str]
) -> None:
    """A state-change error on commit: settled, nothing left open on the server."""
    store = MongoEventStore(connection, transaction_time_budget=3)
    await store.count()
    await _fail(connection, 1, "commitTransaction", errorCode=code, errorLabels=labels)
    event = make_event(stream_id(), 1)
    try:
        stored = await put_one(store, event)
    except CommitOutcomeUnknownError:
        stored = await put_one(store, event)  # the documented retry
    finally:
        await _fail_off(connection)
    assert stored.event_id == event.event_id
    assert await counter_is_free(store), "a transaction was left holding the counter"
    await put_one(store, make_event(stream_id(), 1))  # an unrelated append goes through


async def test_giving_up_on_a_commit_leaves_nothing_open(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection, transaction_time_budget=1)
    await store.count()
    await _fail(
        connection,
        1000,
        "commitTransaction",
        errorCode=91,
        errorLabels=["UnknownTransactionCommitResult"],
    )
    try:
        with pytest.raises(CommitOutcomeUnknownError):
            await put_one(store, make_event(stream_id(), 1))
    finally:
        await _fail_off(connection)
    assert await counter_is_free(store), "the given-up commit left its transaction open"
    await put_one(store, make_event(stream_id(), 1))
