"""Sample domains shared by the CLI, the notebooks, the tests and the benchmarks.

May import: the ports, the services and the workbench; never a backend.
"""

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
from .projections import SAMPLE_PROJECTIONS, OpenTasks, OrderTotals

__all__ = [
    "SAMPLE_PROJECTIONS",
    "Chat",
    "LineAdded",
    "OpenTasks",
    "Order",
    "OrderCancelled",
    "OrderPlaced",
    "OrderShipped",
    "OrderTotals",
    "chat_registry",
    "generate_chats",
    "generate_orders",
    "order_registry",
]
