from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import pytest

from eventlab import EventRegistry, MongoConnectionManager, MongoEventStore, StoredEvent

from .domain import order_registry


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A slow test runs untraced by coverage (pytest-cov's ``no_cover``).

    The slow tests are the concurrency, kill and model runs: they drive the paths the other
    tests cover thousands of times over, and tracing them doubled their CPU time (a DCB machine
    and a concurrency test: 35 s untraced, 57 s traced) on a suite that is CPU-bound. Coverage
    is the measure of what the other tests reach; their set-up and tear-down stay traced.
    """
    coverage = config.pluginmanager.get_plugin("_cov")
    if coverage is None or getattr(coverage, "_disabled", True):  # --no-cov: nothing to pause
        return
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.no_cover)


@pytest.fixture
async def connection(mongo_uri: str, database_name: str) -> AsyncIterator[MongoConnectionManager]:
    async with MongoConnectionManager(mongo_uri, database=database_name) as conn:
        yield conn


@pytest.fixture
def registry() -> EventRegistry:
    return order_registry()


@pytest.fixture(params=["transactional", "preallocated"])
async def store(
    request: pytest.FixtureRequest, connection: MongoConnectionManager, registry: EventRegistry
) -> MongoEventStore:
    return MongoEventStore(connection, registry=registry, positions=request.param)


@pytest.fixture
async def tx_store(connection: MongoConnectionManager, registry: EventRegistry) -> MongoEventStore:
    return MongoEventStore(connection, registry=registry, positions="transactional")


def make_event(
    aggregate_id: str, version: int, event_type: str = "Noted", **payload: Any
) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type=event_type,
        aggregate_id=aggregate_id,
        aggregate_type="Note",
        version=version,
        payload=payload or {"n": version},
        metadata={"correlation_id": "c-1"},
        occurred_at=datetime.now(UTC),
    )


def stream_id() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


async def put(
    store: MongoEventStore, events: Sequence[StoredEvent], *, uow: Any = None
) -> list[StoredEvent]:
    """Append records at their own versions, each run of one stream as one ``append``."""
    stored: list[StoredEvent] = []
    for _, run in groupby(events, key=lambda e: e.aggregate_id):
        batch = list(run)
        stored += await store.append(batch[0].aggregate_id, batch, batch[0].version - 1, uow=uow)
    return stored


async def put_one(store: MongoEventStore, event: StoredEvent, *, uow: Any = None) -> StoredEvent:
    """Append one record at its own version."""
    (stored,) = await store.append(event.aggregate_id, [event], event.version - 1, uow=uow)
    return stored


async def counter_is_free(store: MongoEventStore) -> bool:
    """Whether no open transaction holds the store's position counter.

    A write to it in a transaction of our own meets a write conflict at once when another
    transaction holds it (the server answers rather than waits), and is aborted either way,
    so nothing changes: a check of "nothing left open" that needs no clock.
    """
    from pymongo.errors import OperationFailure

    schema = store._schema
    async with store.connection.client.start_session() as session:
        await session.start_transaction()
        try:
            await schema.counters.update_one(
                {"_id": schema.counter_id}, {"$set": {"probe": uuid.uuid4().hex}}, session=session
            )
        except OperationFailure as exc:
            if exc.code == 112:  # WriteConflict
                return False
            raise
        finally:
            await session.abort_transaction()
    return True


# The machines' profiles: ``pytest --hypothesis-profile=long`` runs them (and every Hypothesis
# test) longer and randomised; without it they run their bounded, derandomised examples.
try:
    from eventlab.statemachines import register_profiles
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass
else:
    register_profiles()
