"""Driver errors are mapped once, at the boundary: a server error on the very first command of
any public entry point (its schema bootstrap included) reaches the caller as eventlab's typed
error for what to do, never as a raw ``pymongo`` exception; a failed read is not called a
transaction error."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.errors import PyMongoError

from eventlab import (
    AggregateStore,
    ConnectionFailedError,
    DataError,
    DeploymentError,
    MongoConnectionManager,
    MongoEventStore,
    MongoOutboxStore,
    MongoRepository,
    NotAuthorizedError,
    OutboxMessage,
    Projector,
    Snapshot,
    Subscriber,
    TransientError,
)
from eventlab.dcb import MongoDCBStore, Query, TaggedEvent
from eventlab.samples import OrderTotals

from .conftest import make_event, stream_id
from .domain import Order, order_registry

# Every command an entry point may send first: a one-shot fail point on all of them fails
# whichever comes first (connect's hello and buildInfo are not among them).
FIRST_COMMANDS = [
    "find",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "aggregate",
    "count",
    "distinct",
    "listIndexes",
    "createIndexes",
    "listCollections",
    "getMore",
]

Entry = Callable[[MongoConnectionManager], Awaitable[Any]]


async def _nothing(*args: Any) -> None:
    return None


@dataclass
class Entity:
    id: str


def _entities(connection: MongoConnectionManager) -> MongoRepository[Entity]:
    return MongoRepository(connection=connection, collection="entities", model_cls=Entity)


def _message() -> OutboxMessage:
    return OutboxMessage(str(uuid.uuid4()), "Sent", {"n": 1})


ENTRY_POINTS: dict[str, Entry] = {
    "store.append": lambda c: MongoEventStore(c).append(
        "s-1", [make_event("s-1", 1)], expected_version=0
    ),
    "store.read_stream": lambda c: MongoEventStore(c).read_stream("s-1"),
    "store.get_current_version": lambda c: MongoEventStore(c).get_current_version("s-1"),
    "store.count": lambda c: MongoEventStore(c).count(),
    "store.read_all": lambda c: MongoEventStore(c).read_all().to_list(),
    "store.log.head": lambda c: MongoEventStore(c).log.head(),
    "dcb.read": lambda c: MongoDCBStore(MongoEventStore(c)).read(Query.of(types=["Joined"])),
    "dcb.append": lambda c: MongoDCBStore(MongoEventStore(c)).append(
        [TaggedEvent("Joined", {"n": 1}, tags=("course:c1",))]
    ),
    "aggregates.load": lambda c: AggregateStore(MongoEventStore(c, registry=order_registry())).load(
        Order, "o-1"
    ),
    "checkpoints.get": lambda c: MongoEventStore(c).backend.checkpoints().get("n"),
    "checkpoints.save": lambda c: MongoEventStore(c).backend.checkpoints().save("n", 1),
    "checkpoints.claim": lambda c: (
        MongoEventStore(c).backend.checkpoints().claim("n", "o", lease=3)
    ),
    "snapshots.get": lambda c: MongoEventStore(c).backend.snapshots().get("a-1"),
    "snapshots.save": lambda c: (
        MongoEventStore(c).backend.snapshots().save(Snapshot("a-1", "Order", 1, 1, {"n": 1}))
    ),
    "read_models.state": lambda c: MongoEventStore(c).backend.read_models().state("p", 1),
    "outbox.save_messages": lambda c: MongoOutboxStore(c).save_messages([_message()]),
    "outbox.claim": lambda c: MongoOutboxStore(c).claim("w", 10, 30),
    "outbox.get": lambda c: MongoOutboxStore(c).get("m-1"),
    "repository.get": lambda c: _entities(c).get("e-1"),
    "repository.add": lambda c: _entities(c).add(Entity("e-1")),
    "subscriber.run": lambda c: Subscriber(
        MongoEventStore(c), "s", None, on_batch=_nothing
    ).run_until_caught_up(),
    "projector.status": lambda c: Projector(MongoEventStore(c), OrderTotals()).status(),
}


async def _fail_next_command(connection: MongoConnectionManager, **data: Any) -> None:
    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": FIRST_COMMANDS, **data},
        }
    )


async def _off(connection: MongoConnectionManager) -> None:
    await connection.client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
async def test_a_refused_first_command_is_a_typed_final_error(
    connection: MongoConnectionManager, entry: str
) -> None:
    await _fail_next_command(connection, errorCode=13)  # Unauthorized
    try:
        with pytest.raises(NotAuthorizedError) as info:
            await ENTRY_POINTS[entry](connection)
    finally:
        await _off(connection)
    error = info.value
    assert isinstance(error, DeploymentError) and not isinstance(error, TransientError)
    assert error.code == 13 and not error.retryable
    assert isinstance(error.__cause__, PyMongoError), "the driver's error stays as the cause"


@pytest.mark.parametrize("entry", ["store.read_stream", "dcb.read", "dcb.append"])
async def test_an_unavailable_deployment_on_first_use_is_transient(
    connection: MongoConnectionManager, entry: str
) -> None:
    # InterruptedDueToReplStateChange, twice: the driver's own retry of a read meets it too.
    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 2},
            "data": {"failCommands": FIRST_COMMANDS, "errorCode": 11602},
        }
    )
    try:
        with pytest.raises(ConnectionFailedError) as info:
            await ENTRY_POINTS[entry](connection)
    finally:
        await _off(connection)
    assert info.value.retryable


async def test_a_failed_plain_read_is_not_a_transaction_error(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection)
    sid = stream_id()
    await store.append(sid, [make_event(sid, 1)], 0)
    await connection.client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["find"], "errorCode": 2},  # BadValue: refused
        }
    )
    try:
        with pytest.raises(DeploymentError, match="refused") as info:
            await store.read_stream(sid)
    finally:
        await _off(connection)
    assert type(info.value) is DeploymentError and info.value.code == 2
    assert "transaction" not in str(info.value).lower()
    assert [e.version for e in await store.read_stream(sid)] == [1], "the store works after"


async def test_the_store_is_usable_after_its_first_use_failed(
    connection: MongoConnectionManager,
) -> None:
    store = MongoEventStore(connection)
    await _fail_next_command(connection, errorCode=13)
    try:
        with pytest.raises(NotAuthorizedError):
            await store.read_stream("s-1")
    finally:
        await _off(connection)
    sid = stream_id()
    stored = await store.append(sid, [make_event(sid, 1)], 0)
    assert [e.version for e in stored] == [1]


@pytest.mark.parametrize("entry", ["store.read_stream", "store.append", "dcb.read", "dcb.append"])
async def test_a_collection_eventlab_cannot_read_is_a_data_error_on_first_use(
    connection: MongoConnectionManager, entry: str
) -> None:
    """A document whose position is not a position (written by something else) is named, as
    a DataError, on the first use of any entry point: never a raw ValueError."""
    await connection.database["domain_events"].insert_one({"position": "x"})
    with pytest.raises(DataError, match="whose position is 'x'"):
        await ENTRY_POINTS[entry](connection)
