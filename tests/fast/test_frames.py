from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from eventlab import ConfigurationError, StoredEvent
from eventlab.samples import Chat, chat_registry, generate_chats, generate_orders, order_registry
from eventlab.workbench import (
    DataFormatError,
    dump_jsonl,
    events_frame,
    events_from_frame,
    load_jsonl,
)


def sample_events() -> list[StoredEvent]:
    registry = order_registry()
    events: list[StoredEvent] = []
    position = 0
    for order in generate_orders(5):
        for version, event in enumerate(order.pending_events, start=1):
            position += 1
            stored = registry.to_stored(
                event,
                aggregate_id=order.id,
                aggregate_type="Order",
                version=version,
                metadata={"correlation_id": f"c-{order.id}"},
            )
            events.append(stored.with_position(position, stored.occurred_at))
    return events


def _event(payload: dict[str, object], position: int = 1) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        event_type="T",
        aggregate_id=f"s-{position}",
        aggregate_type="A",
        version=1,
        payload=payload,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        position=position,
    )


def test_frame_dtypes_and_flattening() -> None:
    events = sample_events()
    frame = events_frame(events)
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(events)
    assert str(frame["position"].dtype) == "Int64" and str(frame["version"].dtype) == "Int64"
    assert isinstance(frame["event_type"].dtype, pd.CategoricalDtype)
    assert isinstance(frame["aggregate_type"].dtype, pd.CategoricalDtype)
    assert str(frame["occurred_at"].dtype) == "datetime64[ns, UTC]" or "UTC" in str(
        frame["occurred_at"].dtype
    )
    placed = frame[frame["event_type"] == "OrderPlaced"].iloc[0]
    assert placed["payload.shipping_address.city"] in {
        "Berlin",
        "Paris",
        "Lisbon",
        "Austin",
        "Leeds",
    }
    assert placed["metadata.correlation_id"] == f"c-{placed['aggregate_id']}"
    lines = frame[frame["event_type"] == "LineAdded"]
    assert isinstance(lines["payload.unit_price"].iloc[0], Decimal)
    assert lines["payload.shipping_address.city"].isna().all()


def test_frame_filters_and_unflattened() -> None:
    events = sample_events()
    raw = events_frame(events, flatten=False)
    assert isinstance(raw["payload"].iloc[0], dict) and "metadata" in raw.columns
    empty = events_frame([])
    assert len(empty) == 0 and "position" in empty.columns
    with pytest.raises(ConfigurationError):
        events_frame("not events")
    with pytest.raises(ConfigurationError):
        events_frame([{"no": "id"}])


def test_jsonl_round_trip(tmp_path: Path) -> None:
    events = sample_events()
    path = tmp_path / "events.jsonl"
    assert dump_jsonl(events, path) == len(events)
    loaded = load_jsonl(path)
    assert loaded == events
    first = json.loads(path.read_text().splitlines()[0])
    assert first["occurred_at"].endswith("+00:00") and isinstance(first["event_id"], str)


def test_jsonl_bad_input(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot open"):
        load_jsonl(tmp_path / "missing.jsonl")
    good = sample_events()[:2]
    path = tmp_path / "bad.jsonl"
    dump_jsonl(good, path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "", "{not json", lines[1]]) + "\n")
    with pytest.raises(DataFormatError, match="one JSON object per line") as info:
        load_jsonl(path)
    assert info.value.line == 3 and "not JSON (column 2" in str(info.value)
    path.write_text(lines[0].replace('"version":1', '"version":0') + "\n")
    with pytest.raises(DataFormatError, match="version"):
        load_jsonl(path)
    path.write_text('{"event_type": "X"}\n')
    with pytest.raises(DataFormatError, match="lacks its 'event_id' field"):
        load_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(DataFormatError, match="a JSON list, not an object"):
        load_jsonl(path)


def test_chat_sample_domain() -> None:
    chats = list(generate_chats(30))
    again = list(generate_chats(30))
    assert [c.pending_events for c in chats] == [c.pending_events for c in again]
    registry = chat_registry()
    tasks = [c for c in chats if c.status is not None]
    assert tasks and all(c.type in {"Task", "Bug", "Epic"} for c in tasks)
    rebuilt = Chat.rebuild(tasks[0].id, tasks[0].pending_events)
    assert rebuilt.state() == {**tasks[0].state()}
    assert registry.name_of(tasks[0].pending_events[0]) == "ChatCreated"
    chat = Chat("c")
    from eventlab.samples.chat import StatusChanged

    with pytest.raises(ValueError, match="not a task"):
        chat.apply(StatusChanged(status="Done"))


def test_dotted_keys_never_share_a_column_with_nested_ones() -> None:
    events = [_event({"a": {"b": 1}}, 1), _event({"a.b": 2}, 2), _event({"c\\d": 3}, 3)]
    frame = events_frame(events)
    assert frame["payload.a.b"].tolist() == [1, pd.NA, pd.NA]
    assert frame["payload.a\\.b"].tolist() == [pd.NA, 2, pd.NA]
    assert frame["payload.c\\\\d"].tolist() == [pd.NA, pd.NA, 3]
    # and they come back as they were
    assert [e.payload for e in events_from_frame(frame)] == [e.payload for e in events]


def test_numeric_columns_on_request() -> None:
    events = [
        _event({"n": 1, "price": Decimal("2.50"), "label": "x", "flag": True}, 1),
        _event({"n": 3, "price": Decimal("1.25"), "label": "y", "flag": False}, 2),
        _event({"label": "z"}, 3),
    ]
    plain = events_frame(events)
    # Exact decimals by default (Arrow decimals: the sum is a Decimal), typed columns.
    assert plain["payload.price"].sum() == Decimal("3.75")
    assert isinstance(plain["payload.price"].iloc[0], Decimal)
    assert str(plain["payload.n"].dtype) == "Int64" and plain["payload.n"].sum() == 4
    assert str(plain["payload.flag"].dtype) == "boolean"
    assert plain["payload.label"].tolist() == ["x", "y", "z"]
    typed = events_frame(events, numeric=True)
    assert typed["payload.price"].dtype == "float64" and typed["payload.price"].sum() == 3.75


def test_many_orders_counts_checks_and_numbers() -> None:
    from eventlab.samples.datasets import many_orders

    chunks = list(many_orders(25_000, chunk=10_000))
    assert [len(c) for c in chunks] == [10_000, 10_000, 5_000]
    events = [e for c in chunks for e in c]
    assert [e.position for e in events] == list(range(1, 25_001))
    assert len({e.event_id for e in events}) == 25_000
    assert list(many_orders(0)) == []
    for bad in (-1, "10", 2**70, {"$gt": 0}):
        with pytest.raises(ConfigurationError):
            list(many_orders(bad))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        list(many_orders(10, chunk=0))


def test_price_times_quantity_works_out_of_the_box_and_stays_exact() -> None:
    events = sample_events()
    frame = events_frame(events)
    lines = frame[frame["event_type"] == "LineAdded"]
    revenue = lines["payload.unit_price"] * lines["payload.quantity"]
    expected = [
        e.payload["unit_price"] * e.payload["quantity"]
        for e in events
        if e.event_type == "LineAdded"
    ]
    assert revenue.tolist() == expected and all(isinstance(v, Decimal) for v in expected)
    assert revenue.sum() == sum(expected)
    by_order = revenue.groupby(lines["aggregate_id"], observed=True).sum()
    assert by_order.sum() == sum(expected)
    assert str(lines["payload.unit_price"].dtype).startswith("decimal128(18,")
    squared = lines["payload.unit_price"] * lines["payload.unit_price"]
    assert squared.iloc[0] == lines["payload.unit_price"].iloc[0] ** 2


def test_decimal_precision_policy() -> None:
    """18 digits when every value fits (arithmetic works); 38 beyond (exact, summed); Python
    objects beyond 38 digits or for infinities and NaN (nothing coerced, nothing raised)."""
    money = events_frame([_event({"p": Decimal("12.50")}, 1), _event({"p": 3}, 2)])
    assert str(money["payload.p"].dtype) == "decimal128(18, 2)[pyarrow]"
    wide = events_frame(
        [_event({"p": Decimal("1" * 25 + ".5")}, 1), _event({"p": Decimal("0.25")}, 2)]
    )
    assert str(wide["payload.p"].dtype) == "decimal128(38, 2)[pyarrow]"
    assert wide["payload.p"].sum() == Decimal("1" * 25 + ".75")
    for odd in (Decimal("Infinity"), Decimal("NaN"), Decimal("1E-40")):
        kept = events_frame([_event({"p": odd}, 1), _event({"p": Decimal(1)}, 2)])
        assert kept["payload.p"].dtype == object
        assert str(kept["payload.p"].iloc[0]) == str(odd) and kept["payload.p"].iloc[1] == 1
