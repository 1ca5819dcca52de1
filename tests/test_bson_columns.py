"""Frames read in bulk from BSON bytes mean what frames of decoded documents mean.

The bulk reading (``eventlab._core.bson_columns``, ``eventlab.workbench._bson_frame``) is an
optimisation of :class:`FrameBuilder`: for any page of stored documents, the frame built from
the bytes equals the frame built from the driver's decoding of them, value for value and type
for type, whether the page was read in bulk or fell back. Hypothesis draws the pages: events
of a few shapes, fields missing or null, nested documents, lists, every BSON type a payload
holds, and values that must fall back (decimals beyond 18 digits, NaN, binaries that are not
UUIDs, mixed kinds, times outside Python's range).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import bson
import pandas as pd
import pytest
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlab._core.bson_columns import Batch, cursor_batch, selection
from eventlab._core.bson_values import AS_BSON_STORES
from eventlab._core.stored_batch import StoredBatch, positions_in
from eventlab._core.tombstones import TOMBSTONE_FIELD
from eventlab.workbench._frame_build import FrameBuilder

EPOCH = datetime(2026, 1, 1)

keys = st.sampled_from(["qty", "price", "sku", "a.b", "back\\slash", "when", "id", "n"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    ).map(Decimal128),
    st.sampled_from(
        [
            Decimal128("NaN"),
            Decimal128("1E+3"),
            Decimal128("-0.00"),
            Decimal128("12345678901234567890.5"),
            Decimal128("0"),
        ]
    ),
    st.integers(0, 10**6).map(lambda s: EPOCH + timedelta(seconds=s)),
    st.uuids().map(lambda u: Binary(u.bytes, 4)),
    st.just(Binary(b"\x01\x02", 0)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=6,
)
payloads = st.dictionaries(keys, values, max_size=5)


@st.composite
def pages(draw: Any) -> list[dict[str, Any]]:
    """Events of one to three shapes, positions unique, some fields missing or null."""
    shapes = draw(st.lists(payloads, min_size=1, max_size=3))
    count = draw(st.integers(1, 12))
    docs = []
    for position in draw(st.permutations(range(1, count + 1))):
        payload = dict(shapes[position % len(shapes)])
        if draw(st.booleans()):  # a value of the shape's fields drawn afresh
            payload.update(draw(payloads))
        doc: dict[str, Any] = {
            "_id": Binary(uuid.uuid4().bytes, 4),
            "event_type": f"T{position % len(shapes)}",
            "aggregate_id": f"s-{position % 3}",
            "aggregate_type": "Thing",
            "version": position,
            "payload": payload,
            "metadata": draw(st.sampled_from([{}, {"user": "u-1"}, {"user": None, "n": 1}])),
            "occurred_at": EPOCH + timedelta(milliseconds=position),
        }
        if draw(st.booleans()):
            doc["schema_version"] = draw(st.sampled_from([1, 2, None]))
        if draw(st.integers(0, 4)) == 0:
            doc["tags"] = draw(st.lists(st.text(max_size=4), max_size=3))
        doc["position"] = position
        if draw(st.booleans()):
            doc["recorded_at"] = EPOCH + timedelta(seconds=position)
        docs.append(doc)
    return docs


def _frames(raws: list[bytes]) -> tuple[pd.DataFrame, pd.DataFrame, FrameBuilder]:
    bulk = FrameBuilder()
    bulk.add(StoredBatch.of(raws, 0, 10**9), as_bson_stores=True)
    decoded = FrameBuilder()
    decoded.add(bson.decode_all(b"".join(raws), AS_BSON_STORES), as_bson_stores=True)
    return bulk.frame(), decoded.frame(), bulk


def _same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert list(left.columns) == list(right.columns)
    assert dict(left.dtypes) == dict(right.dtypes)
    pd.testing.assert_frame_equal(left, right)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_a_page_read_in_bulk_is_the_page_decoded(docs: list[dict[str, Any]]) -> None:
    raws = [bson.encode(doc) for doc in docs]
    try:
        decoded_frame = _frames(raws)[1]
    except Exception as exc:  # what the decoded path refuses, the bulk path refuses alike
        with pytest.raises(type(exc)):
            _frames(raws)
        return
    bulk_frame, decoded_frame, _ = _frames(raws)
    _same(bulk_frame, decoded_frame)


def _order_event(position: int, **payload: Any) -> dict[str, Any]:
    return {
        "_id": Binary(uuid.uuid4().bytes, 4),
        "event_type": "OrderPlaced",
        "aggregate_id": f"order-{position}",
        "aggregate_type": "Order",
        "version": 1,
        "payload": payload,
        "metadata": {"correlation_id": str(uuid.uuid4())},
        "occurred_at": EPOCH,
        "schema_version": 1,
        "position": Int64(position),
        "recorded_at": EPOCH,
    }


def test_events_of_a_few_shapes_are_read_in_bulk() -> None:
    """The common page (events of a few types, money, ids, times, nested documents) takes
    the bulk path, and its values are exact."""
    docs = [
        _order_event(
            i,
            price=Decimal128("19.99"),
            quantity=i,
            item=Binary(uuid.UUID(int=i).bytes, 4),
            address={"city": "Berlin", "zip": "10115"},
            due=EPOCH + timedelta(days=i),
            express=bool(i % 2),
            weight=0.5 * i,
        )
        for i in range(1, 40)
    ] + [_order_event(i, note="gift") for i in range(40, 50)]
    bulk, decoded, builder = _frames([bson.encode(d) for d in docs])
    _same(bulk, decoded)
    assert builder.bulk_pages == 1
    assert bulk["payload.price"].sum() == Decimal("19.99") * 39
    assert bulk.loc[0, "payload.item"] == str(uuid.UUID(int=1))
    assert bulk["payload.address.city"].iloc[0] == "Berlin"
    assert bulk["payload.note"].isna().sum() == 39


@pytest.mark.parametrize(
    "value",
    [
        Decimal128("12345678901234567890.5"),  # beyond 18 digits
        Decimal128("NaN"),
        Binary(b"\x00" * 4, 0),  # not a UUID
        datetime(9999, 12, 31, 23, 59, 59),
        {},  # an empty document, kept whole
        [Decimal128("1.5"), {"x": 1}],
    ],
    ids=["long-decimal", "nan", "binary", "far-time", "empty-document", "list-of-kinds"],
)
def test_what_the_bulk_path_does_not_read_falls_back_to_the_same_frame(value: Any) -> None:
    docs = [_order_event(i, value=value, n=i) for i in range(1, 5)]
    bulk, decoded, _ = _frames([bson.encode(d) for d in docs])
    _same(bulk, decoded)


def test_mixed_kinds_in_one_field_fall_back_to_the_same_frame() -> None:
    docs = [_order_event(1, value=1), _order_event(2, value="one"), _order_event(3, value=1.5)]
    bulk, decoded, builder = _frames([bson.encode(d) for d in docs])
    _same(bulk, decoded)
    assert builder.bulk_pages == 0


def test_a_batch_keeps_its_range_and_leaves_tombstones_out() -> None:
    docs = [_order_event(p) for p in (5, 1, 9, 3, 7)]
    docs.append({"_id": "gap-4", "position": Int64(4), TOMBSTONE_FIELD: True})
    docs.append({"_id": "no-position", "event_type": "X"})
    raws = [bson.encode(d) for d in docs]
    batch = StoredBatch.of(raws, 2, 7)
    assert [d["position"] for d in batch] == [5, 3, 7]
    assert positions_in(batch) == [5, 3, 7] == batch.positions()
    rows, positions = selection(Batch.of(raws), 2, 7, TOMBSTONE_FIELD)
    assert rows.tolist() == [0, 3, 4] and positions.tolist() == [5, 3, 7]
    assert selection(Batch.of(raws[:5]), 0, 10, TOMBSTONE_FIELD)[1].tolist() == [5, 1, 9, 3, 7]
    assert len(batch) == 3 and batch[0]["aggregate_id"] == "order-5"
    assert "StoredBatch of 7 documents" in repr(batch)


def test_an_empty_batch_is_an_empty_page() -> None:
    batch = StoredBatch.of([], 0, 10)
    assert len(batch) == 0 and list(batch) == [] and batch.positions() == []
    assert FrameBuilder().add(batch) == 0


typed_values = {
    "int": st.integers(-(2**40), 2**40),
    "float": st.floats(allow_nan=False),
    "text": st.text(max_size=8),
    "decimal": st.builds(
        lambda digits, exponent, negative: Decimal128(
            Decimal((1 if negative else 0, tuple(int(d) for d in str(digits)), exponent))
        ),
        st.integers(0, 10**9),
        st.integers(-8, 3),
        st.booleans(),
    ),
    "time": st.integers(-(10**12), 10**12).map(lambda ms: EPOCH + timedelta(milliseconds=ms)),
    "uuid": st.uuids().map(lambda u: Binary(u.bytes, 4)),
    "bool": st.booleans(),
    "tags": st.lists(st.text(max_size=4), max_size=3),
}


@st.composite
def typed_pages(draw: Any) -> list[dict[str, Any]]:
    """Pages whose every field has one kind (or is null or missing): what events are."""
    kinds = draw(st.dictionaries(keys, st.sampled_from(sorted(typed_values)), min_size=1))
    docs = []
    for position in range(1, draw(st.integers(1, 15)) + 1):
        payload: dict[str, Any] = {}
        for key, kind in kinds.items():
            choice = draw(st.integers(0, 5))
            if choice == 0:
                continue  # missing
            value = None if choice == 1 else draw(typed_values[kind])
            payload[key] = value
        docs.append(_order_event(position, **payload))
    return docs


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_pages())
def test_pages_of_one_kind_per_field_are_read_in_bulk_and_mean_the_same(
    docs: list[dict[str, Any]],
) -> None:
    bulk, decoded, builder = _frames([bson.encode(d) for d in docs])
    _same(bulk, decoded)
    wide = [c for c in decoded if str(decoded[c].dtype).startswith("decimal128(38")]
    assert builder.bulk_pages == (0 if wide else 1), "read in bulk unless a decimal is wide"


def test_a_cursor_batch_is_found_in_the_reply_without_decoding_it() -> None:
    docs = [_order_event(p) for p in (1, 2, 3)]
    for name in ("firstBatch", "nextBatch"):
        cursor = bson.encode({"id": Int64(2**40), "ns": "db.events", name: docs, "extra": 1.5})
        starts, cursor_id = cursor_batch(cursor)
        assert cursor_id == 2**40
        batch = StoredBatch(Batch(cursor, starts), 0, 10)
        assert [d["aggregate_id"] for d in batch] == ["order-1", "order-2", "order-3"]
    starts, cursor_id = cursor_batch(bson.encode({"id": Int64(0), "nextBatch": []}))
    assert cursor_id == 0 and len(starts) == 0


# -- a frame does not depend on where its pages begin --------------------------------------------


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """UUIDs in a column of objects as their text (a page that held them as text, the
    column's Arrow form, gives text back)."""
    frame = frame.copy()
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: str(v) if isinstance(v, uuid.UUID) else v)
    return frame


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(pages(), typed_pages()), st.data())
def test_a_frame_read_in_pages_is_the_frame_read_at_once(
    docs: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Split anywhere into pages, read in bulk or decoded: the same columns, types and
    values as one page (a column typed in one page and of objects in another, ints in one
    and floats in another, decimals of other scales: none may depend on the split)."""
    raws = [bson.encode(doc) for doc in docs]
    cuts = sorted(data.draw(st.lists(st.integers(1, max(len(raws) - 1, 1)), max_size=3)))
    parts = [raws[a:b] for a, b in zip([0, *cuts], [*cuts, len(raws)], strict=True) if a < b]
    whole = FrameBuilder()
    try:
        whole.add(bson.decode_all(b"".join(raws), AS_BSON_STORES), as_bson_stores=True)
        expected = whole.frame()
    except Exception:  # what one page refuses is not this test's question
        return
    for bulk in (True, False):
        _same(_comparable(_paged(parts, bulk=bulk).frame()), _comparable(expected))


def _paged(parts: list[list[bytes]], *, bulk: bool) -> FrameBuilder:
    """A frame builder given ``parts`` (each a page of encoded documents): read in bulk from
    their bytes, or decoded first."""
    paged = FrameBuilder()
    for part in parts:
        page: Any = (
            StoredBatch.of(part, 0, 10**9)
            if bulk
            else bson.decode_all(b"".join(part), AS_BSON_STORES)
        )
        paged.add(page, as_bson_stores=True)
    return paged


def test_a_column_typed_in_one_page_and_of_objects_in_another_keeps_every_value() -> None:
    """2,000 ints then a text: the ints were dropped to null (the object page overwrote the
    typed column)."""
    first = [_order_event(i, x=i) for i in range(1, 2001)]
    second = [_order_event(2001, x="a"), _order_event(2002, x=7)]
    builder = FrameBuilder()
    builder.add(StoredBatch.of([bson.encode(d) for d in first], 0, 10**9))
    builder.add(StoredBatch.of([bson.encode(d) for d in second], 0, 10**9))
    column = builder.frame()["payload.x"]
    assert column.notna().all()
    assert column.iloc[0] == 1 and column.iloc[1999] == 2000 and column.iloc[2000] == "a"


def test_decimals_of_two_scales_in_two_pages_stay_within_18_digits() -> None:
    """``10.50`` in one page and ``1.5`` in another: ``decimal128(18, 2)``, so that a price
    times a quantity computes (a 38-digit column's product does not fit)."""
    builder = FrameBuilder()
    for page in ([Decimal128("10.50")] * 3, [Decimal128("1.5")]):
        docs = [_order_event(i, price=p, quantity=2) for i, p in enumerate(page, start=1)]
        builder.add(StoredBatch.of([bson.encode(d) for d in docs], 0, 10**9))
    frame = builder.frame()
    assert str(frame["payload.price"].dtype) == "decimal128(18, 2)[pyarrow]"
    assert (frame["payload.price"] * frame["payload.quantity"]).sum() == Decimal("66.00")


def test_an_int_beyond_a_floats_precision_beside_floats_stays_exact() -> None:
    builder = FrameBuilder()
    builder.add(StoredBatch.of([bson.encode(_order_event(1, q=Int64(2**53 + 1)))], 0, 10))
    builder.add(StoredBatch.of([bson.encode(_order_event(2, q=0.5))], 0, 10))
    assert builder.frame()["payload.q"].tolist() == [2**53 + 1, 0.5]


def test_long_texts_are_read_in_bulk_as_the_driver_reads_them() -> None:
    docs = [
        _order_event(i, note=None if i % 3 == 0 else "é" * (i * 50), short="x")
        for i in range(1, 41)
    ]
    bulk, decoded, builder = _frames([bson.encode(d) for d in docs])
    _same(bulk, decoded)
    assert builder.bulk_pages == 1


def test_a_page_of_a_hundred_shapes_is_read_in_bulk_and_one_of_all_different_is_not() -> None:
    """A group of one shape costs the walk what a few documents cost the driver: many
    shapes are fine, a page of documents that all differ goes to the driver (same frame)."""
    shapes = [_order_event(i, **{f"f{i % 100}": i, "n": i}) for i in range(1, 2001)]
    bulk, decoded, builder = _frames([bson.encode(d) for d in shapes])
    _same(bulk, decoded)
    assert builder.bulk_pages == 1
    different = [_order_event(i, **{f"f{i}": i}) for i in range(1, 201)]
    bulk, decoded, builder = _frames([bson.encode(d) for d in different])
    _same(bulk, decoded)
    assert builder.bulk_pages == 0


def test_the_arrow_form_keeps_a_column_typed_in_one_page_and_of_objects_in_another() -> None:
    """Polars and the flat export take the Arrow form: one column, every value (it was a
    column named twice); a decimal beyond 38 digits as Extended JSON text."""
    builder = FrameBuilder()
    first = [_order_event(i, amount=Decimal128("10.50")) for i in range(1, 4)]
    second = [_order_event(4, amount=Decimal128("1E+40"))]
    for page in (first, second):
        builder.add(StoredBatch.of([bson.encode(d) for d in page], 0, 10))
    table = builder.arrow()
    assert table.column_names.count("payload.amount") == 1
    assert table["payload.amount"].null_count == 0
    assert '"$numberDecimal": "1E+40"' in table["payload.amount"][3].as_py()


def _thing(position: int, price: Any) -> dict[str, Any]:
    return {
        "_id": bson.Binary(uuid.UUID(int=position).bytes, 4),
        "event_type": "T0",
        "aggregate_id": f"s-{position}",
        "aggregate_type": "Thing",
        "version": 1,
        "payload": {"price": price},
        "metadata": {},
        "occurred_at": datetime(2026, 1, 1, 0, 0, position),
        "position": position,
    }


@pytest.mark.parametrize("bulk", [True, False])
def test_bytes_among_text_stay_bytes_in_every_page(bulk: bool) -> None:
    """Arrow would take a list of text and bytes as a list of text (and a struct of them as
    binary), without a word: a page of such lists keeps its values as they are stored."""
    raws = [
        bson.encode(_thing(1, False)),
        *(bson.encode(_thing(p, ["", bson.Binary(b"\x01\x02", 0)])) for p in (2, 3)),
    ]
    paged = _paged([raws[:1], raws[1:]], bulk=bulk)
    assert paged.frame()["payload.price"].tolist() == [False, ["", b"\x01\x02"], ["", b"\x01\x02"]]
    mixed = FrameBuilder()
    docs = [_thing(1, [{"x": "a"}]), _thing(2, [{"x": bson.Binary(b"b", 0)}])]
    mixed.add(
        bson.decode_all(b"".join(map(bson.encode, docs)), AS_BSON_STORES), as_bson_stores=True
    )
    # Not [{"x": b"a"}] and [{"x": b"b"}]: each value as it is stored (Extended JSON text).
    column = mixed.arrow()["payload.price"].to_pylist()
    assert column == ['[{"x": "a"}]', '[{"x": {"$binary": {"base64": "Yg==", "subType": "00"}}}]']


@pytest.mark.parametrize("bulk", [True, False])
def test_ints_in_one_page_and_decimals_in_another_are_decimals_as_in_one_page(bulk: bool) -> None:
    """One page of an int and a decimal gives a decimal column (the int exact in it): two
    pages, one of each, give the same (Arrow casts an int to a decimal only with room for 19
    digits, which an 18-digit column has not)."""
    raws = [
        bson.encode(_thing(1, bson.Decimal128("0.00"))),
        bson.encode(_thing(2, 7)),
    ]
    whole = FrameBuilder()
    whole.add(bson.decode_all(b"".join(raws), AS_BSON_STORES), as_bson_stores=True)
    paged = _paged([raws[:1], raws[1:]], bulk=bulk)
    expected, frame = whole.frame()["payload.price"], paged.frame()["payload.price"]
    assert str(frame.dtype) == str(expected.dtype) == "decimal128(18, 2)[pyarrow]"
    assert frame.tolist() == expected.tolist() == [Decimal("0.00"), Decimal("7.00")]
