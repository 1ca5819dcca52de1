from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlab import (
    ConfigurationError,
    DomainEvent,
    EventRegistry,
    InvalidEventError,
    SerializationError,
    StoredEvent,
    UnknownEventTypeError,
    UpcastError,
)
from eventlab._core.bson_values import decimals_to_python, to_bson_value

from ..domain import Currency, LineAdded, OrderPlaced


class RenamedV2(DomainEvent):
    """v1 had ``name``; v2 splits it into ``first`` and ``last``."""

    event_type = "PersonRenamed"
    schema_version = 3
    aggregate_type = "Person"
    first: str
    last: str
    title: str


def person_registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(RenamedV2)

    @registry.upcaster("PersonRenamed", from_version=1)
    def split_name(payload: dict[str, Any]) -> dict[str, Any]:
        first, _, last = payload.pop("name").partition(" ")
        return {**payload, "first": first, "last": last}

    @registry.upcaster("PersonRenamed", from_version=2)
    def add_title(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "title": ""}

    return registry


payload_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.uuids()
    | st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20
    )
    | st.datetimes(timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def test_upcast_errors_are_typed() -> None:
    registry = person_registry()
    newer = StoredEvent(
        event_id=uuid.uuid4(),
        event_type="PersonRenamed",
        aggregate_id="p",
        aggregate_type="Person",
        version=1,
        payload={},
        occurred_at=datetime.now(UTC),
        schema_version=9,
    )
    with pytest.raises(UpcastError, match="newer"):
        registry.to_domain(newer)
    broken = EventRegistry()
    broken.register(RenamedV2)
    with pytest.raises(UpcastError, match="no upcaster"):
        broken.upcast("PersonRenamed", 1, 3, {"name": "x"})
    broken.add_upcaster("PersonRenamed", 1, lambda p: p["missing"])
    with pytest.raises(UpcastError, match="failed"):
        broken.upcast("PersonRenamed", 1, 2, {})
    broken.add_upcaster("PersonRenamed", 2, lambda p: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(UpcastError, match="not a dict"):
        broken.upcast("PersonRenamed", 2, 3, {})
    with pytest.raises(ConfigurationError, match="exists"):
        broken.add_upcaster("PersonRenamed", 2, lambda p: p)


def test_unknown_event_type_raises_or_loads_raw() -> None:
    stored = StoredEvent(
        event_id=uuid.uuid4(),
        event_type="FromTheFuture",
        aggregate_id="a",
        aggregate_type="A",
        version=1,
        payload={"x": 1},
        occurred_at=datetime.now(UTC),
    )
    strict = EventRegistry()
    with pytest.raises(UnknownEventTypeError) as info:
        strict.to_domain(stored)
    assert info.value.event_type == "FromTheFuture"
    assert "FromTheFuture" in str(info.value)
    assert strict.to_domain(stored, unknown="raw") is stored
    assert EventRegistry(unknown="raw").to_domain(stored) is stored
    with pytest.raises(ConfigurationError):
        EventRegistry(unknown="ignore")  # type: ignore[arg-type]


def test_registration_rules() -> None:
    registry = EventRegistry()
    assert registry.register(OrderPlaced) is OrderPlaced
    registry.register(OrderPlaced)  # same class again is fine
    assert "OrderPlaced" in registry and registry.names() == ["OrderPlaced"]

    class OrderPlacedClash(DomainEvent):
        event_type = "OrderPlaced"

    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(OrderPlacedClash)
    with pytest.raises(ConfigurationError):
        registry.register(dict)  # type: ignore[type-var]

    @registry.register(name="Custom")
    class Named(DomainEvent):
        pass

    assert registry.class_for("Custom") is Named
    assert registry.name_of(Named()) == "Custom"
    with pytest.raises(UnknownEventTypeError):
        registry.class_for("Nope")


def test_stored_payload_that_does_not_fit_the_class() -> None:
    registry = EventRegistry()
    registry.register(LineAdded)
    bad = StoredEvent(
        event_id=uuid.uuid4(),
        event_type="LineAdded",
        aggregate_id="a",
        aggregate_type="Order",
        version=1,
        payload={"sku": "x", "quantity": "many", "price": "1"},
        occurred_at=datetime.now(UTC),
    )
    with pytest.raises(InvalidEventError, match="does not fit"):
        registry.to_domain(bad)


def test_serialization_errors_name_the_path() -> None:
    with pytest.raises(SerializationError) as info:
        to_bson_value({"lines": [{"price": complex(1, 2)}]})
    assert info.value.path == "payload.lines[0].price"
    with pytest.raises(SerializationError, match="34 significant"):
        to_bson_value({"x": Decimal("1." + "1" * 40)})
    with pytest.raises(SerializationError, match="date"):
        to_bson_value({"d": datetime.now(UTC).date()})
    with pytest.raises(SerializationError, match="keys must be strings"):
        to_bson_value({1: "x"})
    with pytest.raises(SerializationError, match="NUL"):
        to_bson_value({"a\x00b": 1})
    assert to_bson_value({"s": {3, 1, 2}, "t": (1, 2), "e": Currency.USD}) == {
        "s": [1, 2, 3],
        "t": [1, 2],
        "e": "USD",
    }


@settings(max_examples=60, deadline=None)
@given(
    payload=st.dictionaries(
        st.text(alphabet="abcdef", min_size=1, max_size=6), payload_values, max_size=5
    )
)
def test_payloads_round_trip_exactly_through_bson(payload: dict[str, Any]) -> None:
    import bson

    from eventlab._core.bson_values import CODEC_OPTIONS

    encoded = bson.encode(to_bson_value(payload), codec_options=CODEC_OPTIONS)
    decoded = decimals_to_python(bson.decode(encoded, codec_options=CODEC_OPTIONS))
    assert decoded == payload


@settings(max_examples=300, deadline=None)
@given(
    value=st.decimals(allow_nan=True, allow_infinity=True)
    | st.builds(
        lambda coefficient, exponent: Decimal(f"{coefficient}E{exponent}"),
        st.integers(min_value=-(10**34) + 1, max_value=10**34 - 1),
        st.integers(min_value=-6176, max_value=6111),
    )
)
def test_fast_decimal128_decoding_matches_the_driver(value: Decimal) -> None:
    from bson import Decimal128

    from eventlab._core.bson_values import decimal128_to_decimal

    try:
        encoded = Decimal128(value)
    except Exception:
        return  # not representable: never stored
    expected = encoded.to_decimal()
    got = decimal128_to_decimal(encoded)
    assert str(got) == str(expected)
