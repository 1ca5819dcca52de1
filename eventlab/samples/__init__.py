"""Sample domains shared by the CLI, the notebooks, the tests and the benchmarks."""

from .chat import Chat, chat_registry, generate_chats
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
    "Chat",
    "LineAdded",
    "Order",
    "OrderCancelled",
    "OrderPlaced",
    "OrderShipped",
    "chat_registry",
    "generate_chats",
    "generate_orders",
    "order_registry",
]
