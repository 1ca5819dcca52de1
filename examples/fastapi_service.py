"""An order service on eventlab with FastAPI: commands through a unit of work, events and
outbox messages committed together, a relay that publishes them, a projection kept up to date,
and everything stopped cleanly when the service shuts down.

Run it where ``eventlab serve`` runs (or with ``EVENTLAB_MONGODB_URI`` set)::

    uv run eventlab serve &
    uv run --with uvicorn uvicorn examples.fastapi_service:app

``tests/test_examples.py`` drives it through httpx's ASGI transport, lifespan included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eventlab import (
    AggregateNotFoundError,
    AggregateStore,
    ConflictError,
    DataError,
    InvalidIdError,
    LoggingPublisher,
    MongoConnectionManager,
    MongoEventStore,
    MongoOutboxStore,
    MongoUnitOfWork,
    OutboxMessage,
    OutboxRelay,
    Projector,
    Publisher,
)
from eventlab.samples import Order, OrderTotals, order_registry
from eventlab.samples.orders import Address


class PlaceOrder(BaseModel):
    order_id: str = Field(min_length=1, max_length=100)
    currency: Literal["EUR", "USD", "GBP"]
    street: str
    city: str
    country: str


class AddLine(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(gt=0)
    unit_price: Decimal = Field(gt=0)


class Ship(BaseModel):
    carrier: str = Field(min_length=1, max_length=100)


def create_app(
    connection: MongoConnectionManager | None = None, publisher: Publisher | None = None
) -> FastAPI:
    """The service. ``connection``: default, ``MongoConnectionManager.from_env`` (the
    ``EVENTLAB_MONGODB_URI``, else the ``eventlab serve`` running here), database ``shop``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conn = connection or MongoConnectionManager.from_env(database="shop")
        await conn.connect()
        shop = app.state  # what the endpoints use, as request.app.state
        shop.connection = conn
        shop.store = MongoEventStore(conn, registry=order_registry())
        shop.outbox = MongoOutboxStore(conn)
        relay = OutboxRelay(shop.outbox, publisher or LoggingPublisher())
        shop.totals = Projector(shop.store, OrderTotals())
        relay.start()
        shop.totals.start()
        try:
            yield
        finally:  # shutdown: the message and the batch in hand are finished, then stop
            await shop.totals.stop()
            await relay.stop()
            await conn.disconnect()

    app = FastAPI(title="orders", lifespan=lifespan)
    _routes(app)
    _errors(app)
    return app


async def unit_of_work(request: Request) -> AsyncIterator[MongoUnitOfWork]:
    """A transaction per request: the endpoint commits; an exception, or no commit, aborts."""
    async with MongoUnitOfWork(request.app.state.connection) as uow:
        yield uow


UnitOfWorkDependency = Annotated[MongoUnitOfWork, Depends(unit_of_work)]


async def _save(request: Request, order: Order, uow: MongoUnitOfWork) -> dict[str, Any]:
    """The order's new events and their outbox messages, in the request's transaction."""
    stored = await AggregateStore(request.app.state.store).save(order, uow=uow)
    messages = [OutboxMessage.from_stored_event(event) for event in stored]
    await request.app.state.outbox.save_messages(messages, uow=uow)
    await uow.commit()
    return {"order_id": order.id, "version": order.version, "status": order.status}


def _routes(app: FastAPI) -> None:
    @app.post("/orders", status_code=201)
    async def place(body: PlaceOrder, request: Request, uow: UnitOfWorkDependency) -> Any:
        order = Order(body.order_id)
        address = Address(street=body.street, city=body.city, country=body.country)
        order.place(uuid.uuid4(), body.currency, address)
        return await _save(request, order, uow)

    @app.post("/orders/{order_id}/lines")
    async def add_line(
        order_id: str, body: AddLine, request: Request, uow: UnitOfWorkDependency
    ) -> Any:
        order = await AggregateStore(request.app.state.store).load(Order, order_id, uow=uow)
        order.add_line(body.sku, body.quantity, body.unit_price)
        return await _save(request, order, uow)

    @app.post("/orders/{order_id}/ship")
    async def ship(order_id: str, body: Ship, request: Request, uow: UnitOfWorkDependency) -> Any:
        order = await AggregateStore(request.app.state.store).load(Order, order_id, uow=uow)
        order.ship(body.carrier, tracking_number=f"{body.carrier}-{order_id}")
        return await _save(request, order, uow)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> Any:
        order = await AggregateStore(request.app.state.store).load(Order, order_id)
        return {"order_id": order.id, "version": order.version, "status": order.status,
                "lines": order.lines, "total": str(order.total)}  # fmt: skip

    @app.get("/order-totals")
    async def order_totals(request: Request) -> Any:
        """The read model: eventually consistent with the orders (the projector follows)."""
        rows = await request.app.state.totals.rows()
        return [{**row, "total": str(row.get("total"))} for row in rows]


def _errors(app: FastAPI) -> None:
    """eventlab's errors by what the caller should do (README, "Errors: what to catch")."""

    def answer(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return handler

    app.add_exception_handler(AggregateNotFoundError, answer(404))
    app.add_exception_handler(ConflictError, answer(409))  # someone else changed it: retry
    app.add_exception_handler(InvalidIdError, answer(422))
    app.add_exception_handler(DataError, answer(422))
    app.add_exception_handler(ValueError, answer(409))  # a domain rule refused the command


app = create_app()
