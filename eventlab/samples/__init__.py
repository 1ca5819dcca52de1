"""Sample domains shared by the CLI, the notebooks, the tests and the benchmarks.

May import: the ports, the services and the workbench; never a backend.
"""

from .chat import Chat, chat_registry, generate_chats
from .customers import Customer, CustomerMoved, CustomerRegistered, customer_registry
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
    "Customer",
    "CustomerMoved",
    "CustomerRegistered",
    "LineAdded",
    "OpenTasks",
    "Order",
    "OrderCancelled",
    "OrderPlaced",
    "OrderShipped",
    "OrderTotals",
    "chat_registry",
    "customer_registry",
    "generate_chats",
    "generate_orders",
    "order_registry",
]
