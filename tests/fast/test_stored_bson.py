"""An event's stored document made from its encoded body is the document eventlab encodes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventlab._core.bson_values import CODEC_OPTIONS
from eventlab._core.errors import DocumentTooLargeError
from eventlab._core.event_codec import (
    encoded_bodies,
    event_body,
    store_fields_bytes,
    stored_bson,
    stored_document,
)
from eventlab._core.records import StoredEvent
from eventlab.samples.datasets import orders_dataset

EVENTS = orders_dataset(10)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(EVENTS),
    # int32 and int64 positions both (BSON encodes a Python int in the smallest that holds it)
    st.one_of(st.integers(1, 2**31 - 1), st.integers(2**31, 2**63 - 1)),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_stored_document_from_an_encoded_body_is_byte_for_byte_the_same(
    event: StoredEvent, position: int, recorded_at: datetime
) -> None:
    placed = replace(event, position=position, recorded_at=recorded_at)
    body = bson.encode(event_body(placed), codec_options=CODEC_OPTIONS)
    made = stored_bson(body, position, recorded_at)
    assert made.raw == bson.encode(stored_document(placed), codec_options=CODEC_OPTIONS)
    assert made["position"] == position and made["_id"] == placed.event_id


@pytest.mark.parametrize("event", EVENTS[:3])
def test_the_made_document_decodes_as_the_event(event: StoredEvent) -> None:
    body = bson.encode(event_body(event), codec_options=CODEC_OPTIONS)
    made = stored_bson(body, 7, datetime(2026, 1, 2, tzinfo=UTC))
    decoded = bson.decode(made.raw, codec_options=CODEC_OPTIONS)
    assert decoded["position"] == 7 and decoded["recorded_at"] == datetime(2026, 1, 2, tzinfo=UTC)
    assert decoded["_id"] == event.event_id


@pytest.mark.parametrize("position", [7, 2**40])
def test_the_size_check_counts_the_store_s_fields_exactly(position: int) -> None:
    event = replace(EVENTS[0], position=position)
    body = bson.encode(event_body(event), codec_options=CODEC_OPTIONS)
    stored = stored_bson(body, position, datetime(2026, 1, 2, tzinfo=UTC))
    assert len(stored.raw) == len(body) + store_fields_bytes(position)
    # A document exactly at the server's limit once stored is taken; a byte more is refused,
    # with the size it would take as stored (never a size below the limit it names).
    at_limit = len(stored.raw)
    assert encoded_bodies([event_body(event)], at_limit, [position]) == [body]
    with pytest.raises(DocumentTooLargeError, match=f"takes {at_limit:,} bytes as stored"):
        encoded_bodies([event_body(event)], at_limit - 1, [position])
