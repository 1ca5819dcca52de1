"""examples/fastapi_service.py as its users run it: lifespan start, requests through httpx's
ASGI transport, events and outbox messages committed together and published, the read model
following, hostile requests refused with nothing written, and a clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from eventlab import MongoConnectionManager, MongoEventStore, OutboxMessage
from eventlab.testing import eventually
from examples.fastapi_service import create_app


class SignallingPublisher:
    """Publishes into a list and signals each message."""

    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []
        self.arrived = asyncio.Event()

    async def publish(self, message: OutboxMessage) -> None:
        self.published.append(message)
        self.arrived.set()


@pytest.fixture
async def service(
    mongo_uri: str, database_name: str
) -> AsyncIterator[tuple[httpx.AsyncClient, SignallingPublisher, MongoConnectionManager]]:
    connection = MongoConnectionManager(mongo_uri, database=database_name)
    publisher = SignallingPublisher()
    app = create_app(connection, publisher)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://shop") as client,
    ):
        yield client, publisher, connection
    running = [
        t
        for t in asyncio.all_tasks()
        if not t.done() and t.get_coro().__qualname__ in ("OutboxRelay.run", "Projector.run")
    ]
    assert not running, "shutdown stops the relay and the projector"
    assert connection._client is None, "shutdown closes the connection"


ORDER = {"currency": "EUR", "street": "1 Rua Augusta", "city": "Lisbon", "country": "PT"}


async def test_an_order_is_placed_shipped_published_and_projected(
    service: tuple[httpx.AsyncClient, SignallingPublisher, MongoConnectionManager],
) -> None:
    client, publisher, connection = service
    placed = await client.post("/orders", json={"order_id": "o-1", **ORDER})
    assert placed.status_code == 201, placed.text
    assert placed.json() == {"order_id": "o-1", "version": 1, "status": "placed"}
    line = {"sku": "SKU-1", "quantity": 2, "unit_price": "9.50"}
    assert (await client.post("/orders/o-1/lines", json=line)).json()["version"] == 2
    shipped = await client.post("/orders/o-1/ship", json={"carrier": "DHL"})
    assert shipped.json() == {"order_id": "o-1", "version": 3, "status": "shipped"}
    again = await client.post("/orders/o-1/ship", json={"carrier": "UPS"})
    assert again.status_code == 409 and "cannot ship a shipped order" in again.json()["detail"]
    order = (await client.get("/orders/o-1")).json()
    assert order == {"order_id": "o-1", "version": 3, "status": "shipped", "lines": 1,
                     "total": "19.00"}  # fmt: skip
    assert (await client.get("/orders/o-404")).status_code == 404
    await eventually(lambda: len(publisher.published) == 3, "the relay publishes the 3 events")
    assert [m.event_type for m in publisher.published] == [
        "OrderPlaced",
        "LineAdded",
        "OrderShipped",
    ]

    async def projected() -> bool:
        rows = (await client.get("/order-totals")).json()
        return rows == [{"_id": "o-1", **rows[0], "status": "shipped", "total": "19.00"}]

    await eventually(projected, "the read model follows the orders")
    assert await MongoEventStore(connection).count() == 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/orders", {"order_id": {"$ne": None}, **ORDER}),
        ("/orders", {"order_id": "o-x", **ORDER, "currency": "BTC"}),
        ("/orders/o-1/lines", {"sku": "S", "quantity": 2**70, "unit_price": "1"}),
        ("/orders/o-1/lines", {"sku": "S", "quantity": -1, "unit_price": "1"}),
        ("/orders/%24where/ship", {"carrier": "DHL"}),
        ("/orders", {"order_id": "x" * 10_000, **ORDER}),
    ],
    ids=["operator id", "unknown currency", "huge int", "negative", "operator in path", "huge"],
)
async def test_hostile_requests_are_refused_and_write_nothing(
    service: tuple[httpx.AsyncClient, SignallingPublisher, MongoConnectionManager],
    path: str,
    body: dict[str, object],
) -> None:
    client, _, connection = service
    assert (await client.post("/orders", json={"order_id": "o-1", **ORDER})).status_code == 201
    refused = await client.post(path, json=body)
    assert refused.status_code in (404, 422), refused.text
    assert await MongoEventStore(connection).count() == 1, "nothing written"


def test_the_docs_show_the_example_as_it_is() -> None:
    import re
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "persistence.md").read_text()
    section = page[page.index("## A FastAPI service") :]
    example = (root / "examples" / "fastapi_service.py").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 2
    for block in blocks:
        assert block in example or textwrap.indent(block, "    ") in example, block[:200]
