"""A cached frame keeps columns of Python objects as the uncached frame holds them: decimals
inside lists and dicts included (the cache stores them as BSON)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from eventlab import StoredEvent
from eventlab.memory import MemoryEventStore
from eventlab.workbench import read_frame


async def test_decimals_nested_in_lists_survive_the_cache(tmp_path: Path) -> None:
    store = MemoryEventStore()
    payload = {"lines": [{"price": Decimal("1.50")}, {"price": Decimal("2.25")}]}
    event = StoredEvent(
        event_id=uuid.uuid4(),
        event_type="Ordered",
        aggregate_id="o-1",
        aggregate_type="Order",
        version=1,
        payload=payload,
        occurred_at=datetime.now(UTC),
    )
    await store.append("o-1", [event], 0)
    plain = await read_frame(store, progress=False)
    filled = await read_frame(store, cache=tmp_path / "c", progress=False)
    reopened = await read_frame(store, cache=tmp_path / "c", progress=False)
    for frame in (filled, reopened):
        assert frame["payload.lines"].tolist() == plain["payload.lines"].tolist()
    assert reopened["payload.lines"].iloc[0][1]["price"] == Decimal("2.25")
