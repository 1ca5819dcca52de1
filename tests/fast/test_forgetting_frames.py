"""Frames of a store with a key store (in memory): personal columns opened, the ``redacted``
flag, forgotten values as the marker; the cache and flat exports hold no plaintext."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest

from eventlab import REDACTED
from eventlab.memory import MemoryEventStore, MemoryKeyStore
from eventlab.samples import CustomerRegistered, customer_registry
from eventlab.workbench import read_frame
from eventlab.workbench._flat import export_flat


async def _store() -> MemoryEventStore:
    store = MemoryEventStore(registry=customer_registry(), keys=MemoryKeyStore())
    for subject, name in (("c1", "Ada Lovelace"), ("c2", "Grace Hopper")):
        event = CustomerRegistered(customer_id=subject, name=name, email=f"{subject}@x.org")
        await store.append(subject, [event], 0)
    return store


def _plaintext_in(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and b"Lovelace" in p.read_bytes()]


async def test_a_frame_opens_personal_columns_and_flags_redacted_rows(tmp_path: Path) -> None:
    store = await _store()
    frame = await read_frame(store)
    assert list(frame["payload.name"]) == ["Ada Lovelace", "Grace Hopper"]
    assert not frame["redacted"].any()
    cached = await read_frame(store, cache=tmp_path / "cache", progress=False)
    assert list(cached["payload.email"]) == ["c1@x.org", "c2@x.org"]
    assert _plaintext_in(tmp_path) == []  # the cache keeps them sealed

    await store.forget("c1")
    for frame in (
        await read_frame(store),
        await read_frame(store, cache=tmp_path / "cache", progress=False),
    ):
        assert frame["payload.name"].iloc[0] is REDACTED
        assert frame["payload.name"].iloc[1] == "Grace Hopper"
        assert list(frame["redacted"]) == [True, False]
        assert frame["payload.plan"].iloc[0] == "free"
    whole = await read_frame(store, flatten=False)
    assert whole["payload"].iloc[0]["email"] is REDACTED and list(whole["redacted"]) == [
        True,
        False,
    ]


async def test_a_polars_frame_shows_the_marker() -> None:
    pytest.importorskip("polars")
    store = await _store()
    await store.forget("c2")
    frame = await read_frame(store, backend="polars")
    assert frame["payload.name"].to_list() == ["Ada Lovelace", "<redacted>"]
    assert frame["redacted"].to_list() == [False, True]


async def test_a_flat_export_keeps_values_sealed_and_nulls_forgotten_ones(tmp_path: Path) -> None:
    store = await _store()
    await export_flat(store, tmp_path / "before", progress=False)
    await store.forget("c1")
    await export_flat(store, tmp_path / "after", progress=False)
    assert _plaintext_in(tmp_path) == []
    rows = ds.dataset(tmp_path / "after", partitioning="hive").to_table().to_pylist()
    by_subject = {row["aggregate_id"]: row for row in rows}
    assert by_subject["c1"]["payload.name"] is None and by_subject["c1"]["redacted"]
    assert isinstance(by_subject["c2"]["payload.name"], bytes) and not by_subject["c2"]["redacted"]


async def test_a_store_without_keys_has_no_flag_column() -> None:
    store = MemoryEventStore(registry=customer_registry())
    event = CustomerRegistered(customer_id="c1", name="Ada", email="a@x.org")
    await store.append("c1", [event], 0)
    frame = await read_frame(store)
    assert "redacted" not in frame.columns and frame["payload.name"].iloc[0] == "Ada"


async def test_a_polars_frame_survives_a_forget_in_a_typed_personal_column() -> None:
    pytest.importorskip("polars")
    from datetime import UTC, datetime
    from decimal import Decimal

    from eventlab import DomainEvent, EventRegistry, Personal

    class Scored(DomainEvent):
        aggregate_type = "Player"
        personal_subject = "player_id"
        player_id: str
        age: Personal[int]
        seen: Personal[datetime]
        credit: Personal[Decimal]

    registry = EventRegistry()
    registry.register(Scored)
    store = MemoryEventStore(registry=registry, keys=MemoryKeyStore())
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    for subject, age in (("p1", 36), ("p2", 40)):
        event = Scored(player_id=subject, age=age, seen=seen, credit=Decimal("1.5"))
        await store.append(subject, [event], 0)
    typed = await read_frame(store)
    assert str(typed["payload.age"].dtype) == "int64"  # typed while nothing is redacted
    assert str(typed["payload.seen"].dtype).startswith("datetime64")
    await store.forget("p1")
    pandas_frame = await read_frame(store)
    assert pandas_frame["payload.age"].tolist() == [REDACTED, 40]
    frame = await read_frame(store, backend="polars")
    assert frame["payload.age"].to_list() == [None, 40]  # one type per column: null
    assert frame["payload.credit"].to_list() == [None, Decimal("1.5")]
    assert frame["redacted"].to_list() == [True, False]


async def test_the_marker_text_in_a_personal_field_flags_its_row() -> None:
    store = MemoryEventStore(registry=customer_registry(), keys=MemoryKeyStore())
    reimported = CustomerRegistered(customer_id="c1", name="<redacted>", email="<redacted>")
    await store.append("c1", [reimported], 0)
    other = CustomerRegistered(customer_id="c2", name="Ada", email="a@x.org", plan="<redacted>")
    await store.append("c2", [other], 0)
    frame = await read_frame(store)
    assert list(frame["redacted"]) == [True, False]  # plan is not personal
    assert frame["payload.name"].iloc[0] is REDACTED
