"""Sample domains shared by the CLI, the notebooks, the tests and the benchmarks."""

from .orders import (
    LineAdded,
    Order,
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    generate_orders,
    order_registry,
)

__all__ = [
    "LineAdded",
    "Order",
    "OrderCancelled",
    "OrderPlaced",
    "OrderShipped",
    "generate_orders",
    "order_registry",
]
