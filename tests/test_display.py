"""What a notebook user sees: short reprs, HTML tables, hints instead of puzzles, progress."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from eventlab import (
    ConfigurationError,
    MongoConnectionManager,
    MongoEventStore,
    Projector,
    StoredEvent,
)
from eventlab.samples import OrderTotals, order_registry
from eventlab.workbench import load_jsonl, read_frame, replay_projection
from eventlab.workbench._display import html_table, show_value

from .conftest import make_event, stream_id

ORDERS = Path(__file__).parent.parent / "data" / "orders.jsonl"


async def test_a_client_passed_positionally_is_accepted(mongo_uri: str, database_name: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        async with MongoConnectionManager(client, database=database_name) as conn:  # type: ignore[arg-type]
            assert conn.client is client and conn.info.kind
    finally:
        await client.close()
    with pytest.raises(ConfigurationError, match="URI string or a client"):
        MongoConnectionManager(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a MongoDB URI"):
        MongoConnectionManager("localhost:27017")


async def test_sync_iteration_of_async_streams_says_what_to_do(store: MongoEventStore) -> None:
    stream = store.read_all(0)
    with pytest.raises(TypeError, match="async for"):
        for _ in stream:  # type: ignore[attr-defined]
            pass
    assert "async for" in repr(stream)
    subscription = store.read_all()
    with pytest.raises(TypeError, match="async for"):
        iter(subscription)  # type: ignore[call-overload]
    assert "CatchUpSubscription at position 0" in repr(subscription)


def test_stored_events_and_values_read_shortly() -> None:
    event = make_event("order-7", 3, "LineAdded")
    text = repr(event)
    assert text.startswith("StoredEvent(order-7 v3 LineAdded at ") and len(text) < 90
    placed = StoredEvent(**{**_fields(event), "position": 12})
    assert repr(placed).startswith("StoredEvent(#12 order-7 v3")
    assert [show_value(v) for v in (None, "", "Lisbon", Decimal("1.50"), 2.0, True)] == [
        "∅", "''", "Lisbon", "1.50", "2", "True"
    ]  # fmt: skip


def _fields(event: StoredEvent) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


async def test_status_objects_show_as_tables(connection: MongoConnectionManager) -> None:
    store = MongoEventStore(connection, registry=order_registry())
    aggregate = stream_id()
    await store.append(aggregate, [make_event(aggregate, 1)], 0)
    status = await Projector(store, OrderTotals()).status()
    html = html_table(status)
    assert "<caption" in html and "ProjectionStatus" in html and "behind" in html
    # In a kernel, the workbench has IPython show the status records as these tables.
    from IPython.core.interactiveshell import InteractiveShell

    from eventlab.workbench._display import register_html_tables

    shell = InteractiveShell.instance()
    register_html_tables()
    formatter = shell.display_formatter.formatters["text/html"]
    assert "ProjectionStatus" in formatter(status) and "<table>" in formatter(connection.info)


async def test_progress_bars_for_restores_frames_and_replays(
    connection: MongoConnectionManager, capsys: pytest.CaptureFixture[str]
) -> None:
    events = load_jsonl(ORDERS)
    store = MongoEventStore(connection, registry=order_registry())
    await store.restore(events, progress=True)
    frame = await read_frame(store, progress=True)
    replay_projection(OrderTotals(), events, progress=True)
    err = capsys.readouterr().err
    assert "restoring" in err and "reading events" in err and "replaying order_totals" in err
    assert len(frame) == len(events)
    await store.restore([], progress=False)
    assert capsys.readouterr().err == ""
