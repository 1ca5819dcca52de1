"""A small order domain used across the tests."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventlab import AggregateRoot, DomainEvent, EventRegistry, applies


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"


class OrderPlaced(DomainEvent):
    aggregate_type = "Order"
    customer_id: UUID
    currency: Currency
    placed_at: datetime


class LineAdded(DomainEvent):
    aggregate_type = "Order"
    sku: str
    quantity: int
    price: Decimal


class OrderShipped(DomainEvent):
    aggregate_type = "Order"
    carrier: str


class Order(AggregateRoot):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.status = "new"
        self.total = Decimal("0")
        self.lines: list[str] = []

    @applies(OrderPlaced)
    def _placed(self, event: OrderPlaced) -> None:
        self.status = "placed"

    @applies(LineAdded)
    def _line(self, event: LineAdded) -> None:
        self.lines.append(event.sku)
        self.total += event.price * event.quantity

    @applies(OrderShipped)
    def _shipped(self, event: OrderShipped) -> None:
        self.status = "shipped"


def order_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register_all(OrderPlaced, LineAdded, OrderShipped)
    return registry
