"""60+ hostile inputs: each one works exactly (a round trip) or raises an EventlabError, and the
store is unchanged after every error."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import bson
import pytest
from bson import Code, Regex
from pydantic import BaseModel

from eventlab import (
    ConfigurationError,
    EventlabError,
    ExpectedVersion,
    MongoConnectionManager,
    MongoEventStore,
    MongoRepository,
    QueryOptions,
    SpecificationBuilder,
    StoredEvent,
)
from eventlab._core.bson_values import CODEC_OPTIONS

from .conftest import make_event, put, put_one, stream_id

BIG = 2**63


class Item(BaseModel):
    id: str
    name: str


def payload_cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(label, payload, should it round-trip exactly?)"""
    return [
        ("int64 max", {"n": BIG - 1}, True),
        ("int64 min", {"n": -BIG}, True),
        ("int over int64", {"n": BIG}, False),
        ("int under int64", {"n": -BIG - 1}, False),
        ("nested big int", {"a": {"b": [1, 2, BIG * 4]}}, False),
        ("decimal 34 digits", {"d": Decimal("1234567890123456789012345678901234")}, True),
        ("decimal 40 digits", {"d": Decimal("1" * 40)}, False),
        ("nan float", {"f": math.nan}, True),
        ("inf float", {"f": math.inf}, True),
        ("dollar key", {"$where": "1"}, False),
        ("nested dollar key", {"a": {"$gt": 1}}, False),
        ("NUL in key", {"a\x00b": 1}, False),
        ("empty key", {"": 1}, False),
        ("int key", {1: "x"}, False),
        ("dotted key", {"a.b": 1}, True),
        ("naive datetime", {"t": datetime(2026, 1, 1)}, False),
        ("bare date", {"t": date(2026, 1, 1)}, False),
        ("object", {"o": object()}, False),
        ("function", {"f": len}, False),
        ("mixed set", {"s": {1, "a"}}, False),
        ("regex object", {"r": re.compile("x")}, False),
        ("code object", {"c": Code("1")}, True),
        ("unicode", {"s": "\u0000\ud7ff\U0001f600"}, True),
        ("deep nesting", _deep(80), True),
        ("long string", {"s": "x" * 1_000_000}, True),
        ("17 MB payload", {"s": "x" * (17 * 1024 * 1024)}, False),
        ("uuid", {"u": uuid.uuid4()}, True),
        ("bytes", {"b": b"\x00\xff"}, True),
        ("empty", {}, True),
        ("list of dicts with dollar", {"l": [{"$x": 1}]}, False),
    ]


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


async def _fingerprint(store: MongoEventStore) -> str:
    docs = await store.events.find({}, sort=[("_id", 1)]).to_list(None)
    counter = await store.counters.find_one({"_id": f"{store.events_collection_name}.position"})
    encoded = b"".join(bson.encode(d, codec_options=CODEC_OPTIONS) for d in docs)
    return hashlib.sha256(encoded + repr(counter).encode()).hexdigest()


@pytest.fixture
async def seeded(tx_store: MongoEventStore) -> MongoEventStore:
    sid = stream_id()
    await put(tx_store, [make_event(sid, 1), make_event(sid, 2)])
    return tx_store


@pytest.mark.parametrize(("label", "payload", "round_trips"), payload_cases(), ids=lambda x: x)
async def test_hostile_payloads(
    seeded: MongoEventStore, label: str, payload: dict[str, Any], round_trips: bool
) -> None:
    before = await _fingerprint(seeded)
    sid = stream_id()
    try:
        event = StoredEvent(
            event_id=uuid.uuid4(),
            event_type="Hostile",
            aggregate_id=sid,
            aggregate_type="Probe",
            version=1,
            payload=payload,
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        await put_one(seeded, event)
    except EventlabError:
        assert not round_trips, f"{label}: refused, but it should round-trip"
        assert await _fingerprint(seeded) == before, f"{label}: the store changed"
        return
    assert round_trips, f"{label}: accepted, but it should be refused"
    stored = (await seeded.read_stream(sid))[0].payload
    assert _same(stored, payload), f"{label}: did not round-trip exactly"


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    if isinstance(b, re.Pattern):
        return isinstance(a, Regex) and a.pattern == b.pattern
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def call_cases() -> list[
    tuple[str, Callable[[MongoEventStore, MongoRepository[Item]], Awaitable[Any]]]
]:
    sid = "hostile-stream"
    return [
        ("expected version too big", lambda s, r: s.append(sid, [make_event(sid, 1)], BIG)),
        ("expected version negative", lambda s, r: s.append(sid, [make_event(sid, 1)], -1)),
        ("expected version float", lambda s, r: s.append(sid, [make_event(sid, 1)], 1.0)),
        ("expected version str", lambda s, r: s.append(sid, [make_event(sid, 1)], "0")),
        ("expected version bool", lambda s, r: s.append(sid, [make_event(sid, 1)], True)),
        ("stream id int", lambda s, r: s.append(123, [make_event(sid, 1)], 0)),
        ("stream id operator", lambda s, r: s.read_stream({"$ne": None})),
        ("stream id empty", lambda s, r: s.get_current_version("")),
        ("position too big", lambda s, r: s.read_all(BIG, max_count=10).to_list()),
        ("position negative", lambda s, r: s.read_all(-1, max_count=10).to_list()),
        ("page size too big", lambda s, r: s.read_all(0, max_count=BIG).to_list()),
        ("page size zero", lambda s, r: s.read_all(0, page_size=0).to_list()),
        ("max count zero", lambda s, r: s.read_stream(sid, max_count=0)),
        ("after version too big", lambda s, r: s.read_stream(sid, after_version=BIG)),
        ("event types operator", lambda s, r: s.read_all(0, event_types=[{"$ne": 1}]).to_list()),
        ("aggregate type operator", lambda s, r: s.stream_ids({"$ne": None})),
        ("mixed streams wrong event", lambda s, r: s.append(sid, [make_event("x", 1)], 0)),
        ("not an event", lambda s, r: s.append(sid, [{"event_type": "x"}], 0)),
        ("batch repeats an id", lambda s, r: _repeated_id(s)),
        (
            "batch mixing streams",
            lambda s, r: s.append(sid, [make_event(sid, 1), make_event(stream_id(), 1)], 0),
        ),
        ("restore without positions", lambda s, r: s.restore([make_event(sid, 1)])),
        (
            "expected ANY on new, fine",
            lambda s, r: s.append(stream_id(), [], ExpectedVersion.ANY),
        ),
        ("repo get operator", lambda s, r: r.get({"$gt": ""})),
        ("repo delete operator", lambda s, r: r.delete({"$ne": None})),
        ("repo delete regex", lambda s, r: r.delete(re.compile(".*"))),
        ("repo list operator", lambda s, r: r.list_all([{"$exists": True}])),
        ("repo get code", lambda s, r: r.get(Code("1"))),
        ("repo get big int", lambda s, r: r.get(BIG)),
        ("spec long startswith", lambda s, r: _search(r, "startswith", "x" * 5000)),
        ("spec huge filter", lambda s, r: _search(r, "in", ["x" * 1000] * 17_000)),
        ("spec dollar field", lambda s, r: _search(r, "eq", 1, field="$where")),
        ("spec regex value", lambda s, r: _search(r, "eq", re.compile("."))),
        ("spec big int value", lambda s, r: _search(r, "eq", BIG)),
        (
            "projection collision",
            lambda s, r: _awaited(r.search(QueryOptions().with_projection("name", "name.first"))),
        ),
        (
            "pagination too big",
            lambda s, r: _awaited(r.search(QueryOptions().with_pagination(limit=BIG))),
        ),
    ]


async def _repeated_id(store: MongoEventStore) -> Any:
    event = make_event("hostile-stream", 1)
    return await store.append("hostile-stream", [event, event], 0)


async def _search(repo: MongoRepository[Item], op: str, value: Any, field: str = "name") -> Any:
    spec = SpecificationBuilder().where(field, op, value).build()
    return await repo.search(QueryOptions().with_specification(spec))


@pytest.mark.parametrize(
    ("label", "call"), call_cases(), ids=lambda x: x if isinstance(x, str) else ""
)
async def test_hostile_calls(
    seeded: MongoEventStore, connection: MongoConnectionManager, label: str, call: Any
) -> None:
    repo = MongoRepository(connection=connection, collection="hostile_items", model_cls=Item)
    await repo.add(Item(id="i-1", name="one"))
    before = await _fingerprint(seeded)
    items_before = await repo.list_all()
    try:
        result = await call(seeded, repo)
    except EventlabError:
        assert await _fingerprint(seeded) == before, f"{label}: the store changed"
        assert await repo.list_all() == items_before, f"{label}: the repository changed"
        return
    assert label.endswith("fine"), f"{label}: accepted {result!r:.80}"


async def _awaited(result: Any) -> Any:
    return await result


STORE_OPTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("positions an operator", {"positions": {"$ne": None}}, "positions"),
    ("positions misspelt", {"positions": "PREALLOCATED"}, "positions"),
    ("positions an int", {"positions": 1}, "positions"),
    ("budget negative", {"transaction_time_budget": -1}, "transaction_time_budget"),
    ("budget huge", {"transaction_time_budget": 10**400}, "transaction_time_budget"),
    ("budget not a number", {"transaction_time_budget": float("nan")}, "transaction_time_budget"),
    ("budget a string", {"transaction_time_budget": "5"}, "transaction_time_budget"),
    ("budget a bool", {"transaction_time_budget": True}, "transaction_time_budget"),
    ("registry a dict", {"registry": {"$ne": None}}, "registry"),
]


@pytest.mark.parametrize(
    ("label", "options", "named"), STORE_OPTIONS, ids=[o[0] for o in STORE_OPTIONS]
)
async def test_the_mongo_store_refuses_the_options_the_memory_store_refuses(
    connection: MongoConnectionManager, label: str, options: dict[str, Any], named: str
) -> None:
    """One options object for both stores: the same refusals, named, before any I/O."""
    events = f"hostile_{uuid.uuid4().hex[:12]}"
    with pytest.raises(ConfigurationError, match=named):
        MongoEventStore(connection, events_collection=events, **options)
    assert events not in await connection.database.list_collection_names()
