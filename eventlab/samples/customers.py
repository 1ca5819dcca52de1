"""The customers domain: events with personal fields, for crypto-shredding
(docs/forgetting.md)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from .._core.domain import AggregateRoot, DomainEvent, applies
from .._core.personal import Personal
from .._core.registry import EventRegistry


class CustomerEvent(DomainEvent):
    """An event of the Customer aggregate; its subject is the customer."""

    aggregate_type = "Customer"
    personal_subject = "customer_id"

    customer_id: str


class CustomerRegistered(CustomerEvent):
    name: Personal[str]
    email: Personal[str]
    born: Personal[datetime | None] = None
    plan: str = "free"


class CustomerMoved(CustomerEvent):
    street: Personal[str]
    city: Personal[str]
    credit: Personal[Decimal] = Decimal(0)


class Customer(AggregateRoot):
    """A customer rebuilt from its events; snapshots every 2 versions (its state holds
    personal data: its snapshots are sealed with the customer's key)."""

    snapshot_every = 2

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name: Any = None
        self.email: Any = None
        self.address: Any = None

    @applies(CustomerRegistered)
    def _registered(self, event: CustomerRegistered) -> None:
        self.name = event.name
        self.email = event.email

    @applies(CustomerMoved)
    def _moved(self, event: CustomerMoved) -> None:
        self.address = f"{event.street}, {event.city}"


def customer_registry() -> EventRegistry:
    """A registry of the customers' events."""
    registry = EventRegistry()
    registry.register_all(CustomerRegistered, CustomerMoved)
    return registry
