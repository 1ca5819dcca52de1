"""Benchmark fixtures: one server, one long-lived event loop, realistic events.

Coroutines are driven with one :class:`asyncio.Runner` for the whole session (never
``asyncio.run`` per round): a fresh loop per round would measure loop and connection-pool
start-up, not eventlab.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from eventlab import DomainEvent, EventRegistry, MongoConnectionManager, MongoEventStore
from eventlab.embedded import EmbeddedMongo

from .budgets import DEFAULT_STORE_SIZES

T = TypeVar("T")


class ItemReserved(DomainEvent):
    """The benchmark event: ~350 bytes of BSON with nested payload, UUIDs, decimals, datetimes."""

    aggregate_type = "Inventory"
    item_id: uuid.UUID
    warehouse: str
    quantity: int
    unit_price: Decimal
    reserved_until: datetime
    location: dict[str, Any]
    tags: list[str]


def make_events(count: int) -> list[ItemReserved]:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    return [
        ItemReserved(
            item_id=uuid.uuid4(),
            warehouse="BER-2",
            quantity=i % 7 + 1,
            unit_price=Decimal("19.99"),
            reserved_until=now + timedelta(hours=2),
            location={"aisle": 12, "shelf": "C", "bin": {"row": 3, "col": 14}},
            tags=["express", "fragile"],
            metadata={
                "correlation_id": str(uuid.uuid4()),
                "causation_id": str(uuid.uuid4()),
                "user_id": "user-4711",
            },
        )
        for i in range(count)
    ]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-sizes",
        default=",".join(str(n) for n in DEFAULT_STORE_SIZES),
        help="comma-separated event counts of the scale suite's stores (default: %(default)s; "
        "the documented large run is 10000,100000)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_size" in metafunc.fixturenames:
        option = str(metafunc.config.getoption("--store-sizes"))
        sizes = [int(n) for n in option.split(",") if n.strip()]
        metafunc.parametrize("store_size", sizes, scope="module", ids=lambda n: f"{n // 1000}k")


@pytest.fixture(scope="session")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as session_runner:
        yield session_runner


@pytest.fixture(scope="session")
def run(runner: asyncio.Runner) -> Callable[[Awaitable[T]], T]:
    def drive(coro: Awaitable[T]) -> T:
        return runner.run(coro)  # type: ignore[arg-type]

    return drive


@pytest.fixture(scope="session")
def bench_uri() -> Iterator[str]:
    external = os.environ.get("EVENTLAB_TEST_MONGODB_URI")
    if external:
        yield external
        return
    with EmbeddedMongo(enable_test_commands=True) as server:  # the fault suite's fail points
        yield server.uri


@pytest.fixture(scope="session")
def registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(ItemReserved)
    return registry


@pytest.fixture(scope="session")
def connection(
    bench_uri: str, run: Callable[[Awaitable[Any]], Any]
) -> Iterator[MongoConnectionManager]:
    conn = MongoConnectionManager(bench_uri, database=f"bench_{uuid.uuid4().hex[:8]}")
    run(conn.connect())
    yield conn
    if os.environ.get("EVENTLAB_TEST_MONGODB_URI"):  # an embedded server's data ends with it
        run(conn.client.drop_database(conn.database_name))
    run(conn.disconnect())


@pytest.fixture(scope="session")
def server_label(connection: MongoConnectionManager) -> str:
    kind = "embedded SecantusDB" if not os.environ.get("EVENTLAB_TEST_MONGODB_URI") else "MongoDB"
    return f"{kind} {connection.info.server_version} ({connection.info.kind})"


def make_store(
    connection: MongoConnectionManager,
    registry: EventRegistry,
    run: Callable[[Awaitable[Any]], Any],
    positions: str,
    collection: str,
) -> MongoEventStore:
    store = MongoEventStore(
        connection,
        registry=registry,
        positions=positions,
        events_collection=collection,  # type: ignore[arg-type]
    )
    run(store.get_current_version("warm-up"))  # migrate and resolve once, outside the timings
    return store


def stored_documents(
    registry: EventRegistry, n: int, first_position: int = 1
) -> list[dict[str, Any]]:
    """``n`` benchmark events of a new stream as the store would hold them (for raw baselines)."""
    from eventlab._core.event_codec import stored_document

    sid = f"raw-{uuid.uuid4().hex}"
    docs = []
    for i, event in enumerate(make_events(n)):
        stored = registry.to_stored(
            event, aggregate_id=sid, aggregate_type="Inventory", version=i + 1
        )
        docs.append(stored_document(stored.with_position(first_position + i, stored.occurred_at)))
    return docs


# The suites measured on a quiet server, in this order, before all others: the budgets, then
# the appends of 100 events timed against their twin (sealed against plain, traced and with
# crash recovery against without), a few milliseconds apart. The large suites' stores (10,000
# events and more) leave the embedded server compacting for a while, which slows every round
# trip: an append that makes more of them (a key read and made) pays it more than its twin.
_FIRST = (
    "test_bench_store.py",
    "test_bench_shredding.py",
    "test_bench_telemetry.py",
    "test_bench_liveness.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The suites of ``_FIRST`` first, in that order; the others after, as collected."""
    items.sort(key=lambda item: _FIRST.index(item.path.name) if item.path.name in _FIRST else 9)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's timing table: the last word
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """End the run with the verdicts: each budget and target, its margin, and why."""
    from ._verdicts import VERDICTS, table

    if VERDICTS:
        terminalreporter.section("eventlab: budgets and targets")
        for line in table(VERDICTS):
            terminalreporter.write_line(line)
