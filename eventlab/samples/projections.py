"""One projection per sample domain: what the tour, the notebooks and the CLI run."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .._core.records import StoredEvent
from .._follow.projections import Projection, on
from ..ports import Rows


class OrderTotals(Projection):
    """One row per order: its customer, city, status, lines and total. Totals per customer are
    a ``groupby`` of its frame."""

    name = "order_totals"
    version = 1

    @on("OrderPlaced")
    async def placed(self, rows: Rows, event: StoredEvent) -> None:
        payload = event.payload
        rows.put(
            event.aggregate_id,
            {
                "customer_id": str(payload["customer_id"]),
                "city": payload["shipping_address"]["city"],
                "currency": payload["currency"],
                "status": "placed",
                "lines": 0,
                "total": Decimal("0"),
            },
        )

    @on("LineAdded")
    async def line_added(self, rows: Rows, event: StoredEvent) -> None:
        row = await rows.get(event.aggregate_id) or _unplaced()
        row["lines"] += 1
        row["total"] += Decimal(str(event.payload["unit_price"])) * event.payload["quantity"]
        rows.put(event.aggregate_id, row)

    @on("OrderShipped", "OrderCancelled")
    async def finished(self, rows: Rows, event: StoredEvent) -> None:
        row = await rows.get(event.aggregate_id) or _unplaced()
        row["status"] = "shipped" if event.event_type == "OrderShipped" else "cancelled"
        rows.put(event.aggregate_id, row)


def _unplaced() -> dict[str, Any]:
    # An order whose OrderPlaced the log does not hold (an anomaly dataset): kept visible.
    return {"customer_id": None, "city": None, "currency": None, "status": "unplaced",
            "lines": 0, "total": Decimal("0")}  # fmt: skip


class OpenTasks(Projection):
    """One row per chat: its title, whether it is a task, its status, assignee and priority, and
    ``open`` (a task not done). Open tasks per assignee: ``frame[frame.open].groupby("assignee")``.
    """

    name = "open_tasks"
    version = 1
    DONE = frozenset({"Done", "Closed"})

    @on("ChatCreated", "ChatRenamed")
    async def titled(self, rows: Rows, event: StoredEvent) -> None:
        await self._update(rows, event, title=event.payload["title"])

    @on("ChatConvertedToTask")
    async def converted(self, rows: Rows, event: StoredEvent) -> None:
        await self._update(rows, event, is_task=True, status="Open")

    @on("UserAssigned")
    async def assigned(self, rows: Rows, event: StoredEvent) -> None:
        await self._update(rows, event, assignee=str(event.payload["user_id"]))

    @on("PrioritySet")
    async def prioritised(self, rows: Rows, event: StoredEvent) -> None:
        await self._update(rows, event, priority=event.payload["priority"])

    @on("StatusChanged")
    async def status_changed(self, rows: Rows, event: StoredEvent) -> None:
        await self._update(rows, event, status=event.payload["status"])

    async def _update(self, rows: Rows, event: StoredEvent, **changes: Any) -> None:
        row = await rows.get(event.aggregate_id) or {
            "title": "", "is_task": False, "status": None, "assignee": None, "priority": None,
        }  # fmt: skip
        row.update(changes)
        row["open"] = bool(row["is_task"]) and row["status"] not in self.DONE
        rows.put(event.aggregate_id, row)


SAMPLE_PROJECTIONS: dict[str, type[Projection]] = {
    OrderTotals.name: OrderTotals,
    OpenTasks.name: OpenTasks,
}
"""The sample projections by name (what ``eventlab projections`` and ``rebuild`` know)."""
