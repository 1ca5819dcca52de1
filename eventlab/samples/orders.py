"""The orders domain: place, add lines, ship or cancel."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .._core.domain import AggregateRoot, DomainEvent, applies
from .._core.registry import EventRegistry


class Address(BaseModel):
    """A postal address (a plain pydantic model nested in events)."""

    model_config = ConfigDict(frozen=True)

    street: str
    city: str
    country: str


class OrderEvent(DomainEvent):
    """An event of the Order aggregate: every one of them belongs to its streams."""

    aggregate_type = "Order"


class OrderPlaced(OrderEvent):
    customer_id: uuid.UUID
    currency: Literal["EUR", "USD", "GBP"]
    shipping_address: Address


class LineAdded(OrderEvent):
    sku: str
    quantity: int
    unit_price: Decimal


class OrderShipped(OrderEvent):
    carrier: str
    tracking_number: str


class OrderCancelled(OrderEvent):
    reason: str


class Order(AggregateRoot):
    """An order rebuilt from its events. Commands check invariants, events change state."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = "new"
        self.customer_id: uuid.UUID | None = None
        self.currency = ""
        self.city = ""
        self.lines = 0
        self.total = Decimal("0")
        self.carrier: str | None = None

    # commands
    def place(self, customer_id: uuid.UUID, currency: str, address: Address) -> None:
        if self.status != "new":
            raise ValueError(f"order {self.id} is already {self.status}")
        self.record(
            OrderPlaced(customer_id=customer_id, currency=currency, shipping_address=address)  # type: ignore[arg-type]
        )

    def add_line(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        if self.status != "placed":
            raise ValueError(f"cannot add lines to a {self.status} order")
        self.record(LineAdded(sku=sku, quantity=quantity, unit_price=unit_price))

    def ship(self, carrier: str, tracking_number: str) -> None:
        if self.status != "placed" or not self.lines:
            raise ValueError(f"cannot ship a {self.status} order with {self.lines} lines")
        self.record(OrderShipped(carrier=carrier, tracking_number=tracking_number))

    def cancel(self, reason: str) -> None:
        if self.status not in ("placed",):
            raise ValueError(f"cannot cancel a {self.status} order")
        self.record(OrderCancelled(reason=reason))

    # state changes
    @applies(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.status = "placed"
        self.customer_id = event.customer_id
        self.currency = event.currency
        self.city = event.shipping_address.city

    @applies(LineAdded)
    def _line_added(self, event: LineAdded) -> None:
        self.lines += 1
        self.total += event.unit_price * event.quantity

    @applies(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status = "shipped"
        self.carrier = event.carrier

    @applies(OrderCancelled)
    def _cancelled(self, event: OrderCancelled) -> None:
        self.status = "cancelled"


def order_registry(registry: EventRegistry | None = None) -> EventRegistry:
    """A registry with the order events (added to ``registry`` if given)."""
    registry = registry if registry is not None else EventRegistry()
    registry.register_all(OrderPlaced, LineAdded, OrderShipped, OrderCancelled)
    return registry


_CITIES = [("Berlin", "DE"), ("Paris", "FR"), ("Lisbon", "PT"), ("Austin", "US"), ("Leeds", "GB")]
_CARRIERS = ["DHL", "UPS", "La Poste", "Royal Mail"]


def generate_orders(count: int, *, seed: int = 7, start: datetime | None = None) -> Iterator[Order]:
    """``count`` orders with pending events, deterministic for a given ``seed``.

    Event ids and timestamps derive from the seed too, so two runs produce identical events.
    """
    rng = random.Random(seed)
    clock = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    for n in range(count):
        order = Order(f"order-{n + 1:05d}")
        city, country = rng.choice(_CITIES)
        events = []
        customer = uuid.UUID(int=rng.getrandbits(128), version=4)
        address = Address(street=f"{rng.randint(1, 200)} Main St", city=city, country=country)
        order.place(customer, rng.choice(["EUR", "USD", "GBP"]), address)
        for _ in range(rng.randint(1, 4)):
            price = Decimal(rng.randint(199, 9999)) / 100
            order.add_line(f"SKU-{rng.randint(1, 40):03d}", rng.randint(1, 5), price)
        roll = rng.random()
        if roll < 0.6:
            order.ship(rng.choice(_CARRIERS), f"TRK{rng.getrandbits(40):012X}")
        elif roll < 0.75:
            order.cancel(rng.choice(["customer request", "payment failed", "out of stock"]))
        for event in order.pending_events:
            clock += timedelta(seconds=rng.randint(5, 600))
            events.append(
                event.model_copy(
                    update={
                        "event_id": uuid.UUID(int=rng.getrandbits(128), version=4),
                        "occurred_at": clock,
                    }
                )
            )
        order._pending = events
        yield order
